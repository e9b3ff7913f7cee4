from pb_api.proto import riak_pb2 as _riak_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RpbGetClientIdResp(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: bytes
    def __init__(self, client_id: _Optional[bytes] = ...) -> None: ...

class RpbSetClientIdReq(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: bytes
    def __init__(self, client_id: _Optional[bytes] = ...) -> None: ...

class RpbGetReq(_message.Message):
    __slots__ = ("bucket", "key", "r", "pr", "basic_quorum", "notfound_ok", "if_modified", "head", "deletedvclock", "timeout", "sloppy_quorum", "n_val", "type", "node_confirms")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    PR_FIELD_NUMBER: _ClassVar[int]
    BASIC_QUORUM_FIELD_NUMBER: _ClassVar[int]
    NOTFOUND_OK_FIELD_NUMBER: _ClassVar[int]
    IF_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    DELETEDVCLOCK_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SLOPPY_QUORUM_FIELD_NUMBER: _ClassVar[int]
    N_VAL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_CONFIRMS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    r: int
    pr: int
    basic_quorum: bool
    notfound_ok: bool
    if_modified: bytes
    head: bool
    deletedvclock: bool
    timeout: int
    sloppy_quorum: bool
    n_val: int
    type: bytes
    node_confirms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., r: _Optional[int] = ..., pr: _Optional[int] = ..., basic_quorum: _Optional[bool] = ..., notfound_ok: _Optional[bool] = ..., if_modified: _Optional[bytes] = ..., head: _Optional[bool] = ..., deletedvclock: _Optional[bool] = ..., timeout: _Optional[int] = ..., sloppy_quorum: _Optional[bool] = ..., n_val: _Optional[int] = ..., type: _Optional[bytes] = ..., node_confirms: _Optional[int] = ...) -> None: ...

class RpbGetResp(_message.Message):
    __slots__ = ("content", "vclock", "unchanged")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VCLOCK_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    content: _containers.RepeatedCompositeFieldContainer[RpbContent]
    vclock: bytes
    unchanged: bool
    def __init__(self, content: _Optional[_Iterable[_Union[RpbContent, _Mapping]]] = ..., vclock: _Optional[bytes] = ..., unchanged: _Optional[bool] = ...) -> None: ...

class RpbPutReq(_message.Message):
    __slots__ = ("bucket", "key", "vclock", "content", "w", "dw", "return_body", "pw", "if_not_modified", "if_none_match", "return_head", "timeout", "asis", "sloppy_quorum", "n_val", "type", "node_confirms")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VCLOCK_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    W_FIELD_NUMBER: _ClassVar[int]
    DW_FIELD_NUMBER: _ClassVar[int]
    RETURN_BODY_FIELD_NUMBER: _ClassVar[int]
    PW_FIELD_NUMBER: _ClassVar[int]
    IF_NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    IF_NONE_MATCH_FIELD_NUMBER: _ClassVar[int]
    RETURN_HEAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ASIS_FIELD_NUMBER: _ClassVar[int]
    SLOPPY_QUORUM_FIELD_NUMBER: _ClassVar[int]
    N_VAL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_CONFIRMS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    vclock: bytes
    content: RpbContent
    w: int
    dw: int
    return_body: bool
    pw: int
    if_not_modified: bool
    if_none_match: bool
    return_head: bool
    timeout: int
    asis: bool
    sloppy_quorum: bool
    n_val: int
    type: bytes
    node_confirms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., vclock: _Optional[bytes] = ..., content: _Optional[_Union[RpbContent, _Mapping]] = ..., w: _Optional[int] = ..., dw: _Optional[int] = ..., return_body: _Optional[bool] = ..., pw: _Optional[int] = ..., if_not_modified: _Optional[bool] = ..., if_none_match: _Optional[bool] = ..., return_head: _Optional[bool] = ..., timeout: _Optional[int] = ..., asis: _Optional[bool] = ..., sloppy_quorum: _Optional[bool] = ..., n_val: _Optional[int] = ..., type: _Optional[bytes] = ..., node_confirms: _Optional[int] = ...) -> None: ...

class RpbPutResp(_message.Message):
    __slots__ = ("content", "vclock", "key")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VCLOCK_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    content: _containers.RepeatedCompositeFieldContainer[RpbContent]
    vclock: bytes
    key: bytes
    def __init__(self, content: _Optional[_Iterable[_Union[RpbContent, _Mapping]]] = ..., vclock: _Optional[bytes] = ..., key: _Optional[bytes] = ...) -> None: ...

class RpbDelReq(_message.Message):
    __slots__ = ("bucket", "key", "rw", "vclock", "r", "w", "pr", "pw", "dw", "timeout", "sloppy_quorum", "n_val", "type")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RW_FIELD_NUMBER: _ClassVar[int]
    VCLOCK_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    W_FIELD_NUMBER: _ClassVar[int]
    PR_FIELD_NUMBER: _ClassVar[int]
    PW_FIELD_NUMBER: _ClassVar[int]
    DW_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SLOPPY_QUORUM_FIELD_NUMBER: _ClassVar[int]
    N_VAL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    rw: int
    vclock: bytes
    r: int
    w: int
    pr: int
    pw: int
    dw: int
    timeout: int
    sloppy_quorum: bool
    n_val: int
    type: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., rw: _Optional[int] = ..., vclock: _Optional[bytes] = ..., r: _Optional[int] = ..., w: _Optional[int] = ..., pr: _Optional[int] = ..., pw: _Optional[int] = ..., dw: _Optional[int] = ..., timeout: _Optional[int] = ..., sloppy_quorum: _Optional[bool] = ..., n_val: _Optional[int] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbListBucketsReq(_message.Message):
    __slots__ = ("timeout", "stream", "type")
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    timeout: int
    stream: bool
    type: bytes
    def __init__(self, timeout: _Optional[int] = ..., stream: _Optional[bool] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbListBucketsResp(_message.Message):
    __slots__ = ("buckets", "done")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedScalarFieldContainer[bytes]
    done: bool
    def __init__(self, buckets: _Optional[_Iterable[bytes]] = ..., done: _Optional[bool] = ...) -> None: ...

class RpbListKeysReq(_message.Message):
    __slots__ = ("bucket", "timeout", "type")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    timeout: int
    type: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., timeout: _Optional[int] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbListKeysResp(_message.Message):
    __slots__ = ("keys", "done")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    done: bool
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ..., done: _Optional[bool] = ...) -> None: ...

class RpbIndexReq(_message.Message):
    __slots__ = ("bucket", "index", "qtype", "key", "range_min", "range_max", "return_terms", "stream", "max_results", "continuation", "timeout", "type", "term_regex", "pagination_sort", "cover_context", "return_body")
    class IndexQueryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        eq: _ClassVar[RpbIndexReq.IndexQueryType]
        range: _ClassVar[RpbIndexReq.IndexQueryType]
    eq: RpbIndexReq.IndexQueryType
    range: RpbIndexReq.IndexQueryType
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    QTYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_MIN_FIELD_NUMBER: _ClassVar[int]
    RANGE_MAX_FIELD_NUMBER: _ClassVar[int]
    RETURN_TERMS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TERM_REGEX_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_SORT_FIELD_NUMBER: _ClassVar[int]
    COVER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RETURN_BODY_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    index: bytes
    qtype: RpbIndexReq.IndexQueryType
    key: bytes
    range_min: bytes
    range_max: bytes
    return_terms: bool
    stream: bool
    max_results: int
    continuation: bytes
    timeout: int
    type: bytes
    term_regex: bytes
    pagination_sort: bool
    cover_context: bytes
    return_body: bool
    def __init__(self, bucket: _Optional[bytes] = ..., index: _Optional[bytes] = ..., qtype: _Optional[_Union[RpbIndexReq.IndexQueryType, str]] = ..., key: _Optional[bytes] = ..., range_min: _Optional[bytes] = ..., range_max: _Optional[bytes] = ..., return_terms: _Optional[bool] = ..., stream: _Optional[bool] = ..., max_results: _Optional[int] = ..., continuation: _Optional[bytes] = ..., timeout: _Optional[int] = ..., type: _Optional[bytes] = ..., term_regex: _Optional[bytes] = ..., pagination_sort: _Optional[bool] = ..., cover_context: _Optional[bytes] = ..., return_body: _Optional[bool] = ...) -> None: ...

class RpbIndexResp(_message.Message):
    __slots__ = ("keys", "results", "continuation", "done")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    results: _containers.RepeatedCompositeFieldContainer[_riak_pb2.RpbPair]
    continuation: bytes
    done: bool
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ..., results: _Optional[_Iterable[_Union[_riak_pb2.RpbPair, _Mapping]]] = ..., continuation: _Optional[bytes] = ..., done: _Optional[bool] = ...) -> None: ...

class RpbContent(_message.Message):
    __slots__ = ("value", "content_type", "charset", "content_encoding", "vtag", "links", "last_mod", "last_mod_usecs", "usermeta", "indexes", "deleted")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHARSET_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    VTAG_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    LAST_MOD_FIELD_NUMBER: _ClassVar[int]
    LAST_MOD_USECS_FIELD_NUMBER: _ClassVar[int]
    USERMETA_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    content_type: bytes
    charset: bytes
    content_encoding: bytes
    vtag: bytes
    links: _containers.RepeatedCompositeFieldContainer[RpbLink]
    last_mod: int
    last_mod_usecs: int
    usermeta: _containers.RepeatedCompositeFieldContainer[_riak_pb2.RpbPair]
    indexes: _containers.RepeatedCompositeFieldContainer[_riak_pb2.RpbPair]
    deleted: bool
    def __init__(self, value: _Optional[bytes] = ..., content_type: _Optional[bytes] = ..., charset: _Optional[bytes] = ..., content_encoding: _Optional[bytes] = ..., vtag: _Optional[bytes] = ..., links: _Optional[_Iterable[_Union[RpbLink, _Mapping]]] = ..., last_mod: _Optional[int] = ..., last_mod_usecs: _Optional[int] = ..., usermeta: _Optional[_Iterable[_Union[_riak_pb2.RpbPair, _Mapping]]] = ..., indexes: _Optional[_Iterable[_Union[_riak_pb2.RpbPair, _Mapping]]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class RpbLink(_message.Message):
    __slots__ = ("bucket", "key", "tag")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    tag: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., tag: _Optional[bytes] = ...) -> None: ...

class RpbGetBucketKeyPreflistReq(_message.Message):
    __slots__ = ("bucket", "key", "type")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    type: bytes
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., type: _Optional[bytes] = ...) -> None: ...

class RpbGetBucketKeyPreflistResp(_message.Message):
    __slots__ = ("preflist",)
    PREFLIST_FIELD_NUMBER: _ClassVar[int]
    preflist: _containers.RepeatedCompositeFieldContainer[RpbBucketKeyPreflistItem]
    def __init__(self, preflist: _Optional[_Iterable[_Union[RpbBucketKeyPreflistItem, _Mapping]]] = ...) -> None: ...

class RpbBucketKeyPreflistItem(_message.Message):
    __slots__ = ("partition", "node", "primary")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    partition: int
    node: bytes
    primary: bool
    def __init__(self, partition: _Optional[int] = ..., node: _Optional[bytes] = ..., primary: _Optional[bool] = ...) -> None: ...
