from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RpbErrorResp(_message.Message):
    __slots__ = ("errmsg", "errcode")
    ERRMSG_FIELD_NUMBER: _ClassVar[int]
    ERRCODE_FIELD_NUMBER: _ClassVar[int]
    errmsg: bytes
    errcode: int
    def __init__(self, errmsg: _Optional[bytes] = ..., errcode: _Optional[int] = ...) -> None: ...

class RpbGetServerInfoResp(_message.Message):
    __slots__ = ("node", "server_version")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    node: bytes
    server_version: bytes
    def __init__(self, node: _Optional[bytes] = ..., server_version: _Optional[bytes] = ...) -> None: ...

class RpbPair(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class RpbGetBucketReq(_message.Message):
    __slots__ = ("bucket", "type")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    type: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbGetBucketResp(_message.Message):
    __slots__ = ("props",)
    PROPS_FIELD_NUMBER: _ClassVar[int]
    props: RpbBucketProps
    def __init__(self, props: _Optional[_Union[RpbBucketProps, _Mapping]] = ...) -> None: ...

class RpbSetBucketReq(_message.Message):
    __slots__ = ("bucket", "props", "type")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PROPS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    props: RpbBucketProps
    type: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., props: _Optional[_Union[RpbBucketProps, _Mapping]] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbResetBucketReq(_message.Message):
    __slots__ = ("bucket", "type")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    type: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbGetBucketTypeReq(_message.Message):
    __slots__ = ("type",)
    TYPE_FIELD_NUMBER: _ClassVar[int]
    type: bytes
    def __init__(self, type: _Optional[bytes] = ...) -> None: ...

class RpbSetBucketTypeReq(_message.Message):
    __slots__ = ("type", "props")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROPS_FIELD_NUMBER: _ClassVar[int]
    type: bytes
    props: RpbBucketProps
    def __init__(self, type: _Optional[bytes] = ..., props: _Optional[_Union[RpbBucketProps, _Mapping]] = ...) -> None: ...

class RpbModFun(_message.Message):
    __slots__ = ("module", "function")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    module: bytes
    function: bytes
    def __init__(self, module: _Optional[bytes] = ..., function: _Optional[bytes] = ...) -> None: ...

class RpbCommitHook(_message.Message):
    __slots__ = ("modfun", "name")
    MODFUN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    modfun: RpbModFun
    name: bytes
    def __init__(self, modfun: _Optional[_Union[RpbModFun, _Mapping]] = ..., name: _Optional[bytes] = ...) -> None: ...

class RpbBucketProps(_message.Message):
    __slots__ = ("n_val", "allow_mult", "last_write_wins", "precommit", "has_precommit", "postcommit", "has_postcommit", "chash_keyfun", "linkfun", "old_vclock", "young_vclock", "big_vclock", "small_vclock", "pr", "r", "w", "pw", "dw", "rw", "basic_quorum", "notfound_ok", "backend", "search", "repl", "search_index", "datatype", "consistent", "write_once", "hll_precision")
    class RpbReplMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FALSE: _ClassVar[RpbBucketProps.RpbReplMode]
        REALTIME: _ClassVar[RpbBucketProps.RpbReplMode]
        FULLSYNC: _ClassVar[RpbBucketProps.RpbReplMode]
        TRUE: _ClassVar[RpbBucketProps.RpbReplMode]
    FALSE: RpbBucketProps.RpbReplMode
    REALTIME: RpbBucketProps.RpbReplMode
    FULLSYNC: RpbBucketProps.RpbReplMode
    TRUE: RpbBucketProps.RpbReplMode
    N_VAL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MULT_FIELD_NUMBER: _ClassVar[int]
    LAST_WRITE_WINS_FIELD_NUMBER: _ClassVar[int]
    PRECOMMIT_FIELD_NUMBER: _ClassVar[int]
    HAS_PRECOMMIT_FIELD_NUMBER: _ClassVar[int]
    POSTCOMMIT_FIELD_NUMBER: _ClassVar[int]
    HAS_POSTCOMMIT_FIELD_NUMBER: _ClassVar[int]
    CHASH_KEYFUN_FIELD_NUMBER: _ClassVar[int]
    LINKFUN_FIELD_NUMBER: _ClassVar[int]
    OLD_VCLOCK_FIELD_NUMBER: _ClassVar[int]
    YOUNG_VCLOCK_FIELD_NUMBER: _ClassVar[int]
    BIG_VCLOCK_FIELD_NUMBER: _ClassVar[int]
    SMALL_VCLOCK_FIELD_NUMBER: _ClassVar[int]
    PR_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    W_FIELD_NUMBER: _ClassVar[int]
    PW_FIELD_NUMBER: _ClassVar[int]
    DW_FIELD_NUMBER: _ClassVar[int]
    RW_FIELD_NUMBER: _ClassVar[int]
    BASIC_QUORUM_FIELD_NUMBER: _ClassVar[int]
    NOTFOUND_OK_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    REPL_FIELD_NUMBER: _ClassVar[int]
    SEARCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    WRITE_ONCE_FIELD_NUMBER: _ClassVar[int]
    HLL_PRECISION_FIELD_NUMBER: _ClassVar[int]
    n_val: int
    allow_mult: bool
    last_write_wins: bool
    precommit: _containers.RepeatedCompositeFieldContainer[RpbCommitHook]
    has_precommit: bool
    postcommit: _containers.RepeatedCompositeFieldContainer[RpbCommitHook]
    has_postcommit: bool
    chash_keyfun: RpbModFun
    linkfun: RpbModFun
    old_vclock: int
    young_vclock: int
    big_vclock: int
    small_vclock: int
    pr: int
    r: int
    w: int
    pw: int
    dw: int
    rw: int
    basic_quorum: bool
    notfound_ok: bool
    backend: bytes
    search: bool
    repl: RpbBucketProps.RpbReplMode
    search_index: bytes
    datatype: bytes
    consistent: bool
    write_once: bool
    hll_precision: int
    def __init__(self, n_val: _Optional[int] = ..., allow_mult: _Optional[bool] = ..., last_write_wins: _Optional[bool] = ..., precommit: _Optional[_Iterable[_Union[RpbCommitHook, _Mapping]]] = ..., has_precommit: _Optional[bool] = ..., postcommit: _Optional[_Iterable[_Union[RpbCommitHook, _Mapping]]] = ..., has_postcommit: _Optional[bool] = ..., chash_keyfun: _Optional[_Union[RpbModFun, _Mapping]] = ..., linkfun: _Optional[_Union[RpbModFun, _Mapping]] = ..., old_vclock: _Optional[int] = ..., young_vclock: _Optional[int] = ..., big_vclock: _Optional[int] = ..., small_vclock: _Optional[int] = ..., pr: _Optional[int] = ..., r: _Optional[int] = ..., w: _Optional[int] = ..., pw: _Optional[int] = ..., dw: _Optional[int] = ..., rw: _Optional[int] = ..., basic_quorum: _Optional[bool] = ..., notfound_ok: _Optional[bool] = ..., backend: _Optional[bytes] = ..., search: _Optional[bool] = ..., repl: _Optional[_Union[RpbBucketProps.RpbReplMode, str]] = ..., search_index: _Optional[bytes] = ..., datatype: _Optional[bytes] = ..., consistent: _Optional[bool] = ..., write_once: _Optional[bool] = ..., hll_precision: _Optional[int] = ...) -> None: ...

class RpbAuthReq(_message.Message):
    __slots__ = ("user", "password")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    user: bytes
    password: bytes
    def __init__(self, user: _Optional[bytes] = ..., password: _Optional[bytes] = ...) -> None: ...
