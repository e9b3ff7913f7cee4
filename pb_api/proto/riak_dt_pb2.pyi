from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MapField(_message.Message):
    __slots__ = ("name", "type")
    class MapFieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        COUNTER: _ClassVar[MapField.MapFieldType]
        SET: _ClassVar[MapField.MapFieldType]
        REGISTER: _ClassVar[MapField.MapFieldType]
        FLAG: _ClassVar[MapField.MapFieldType]
        MAP: _ClassVar[MapField.MapFieldType]
    COUNTER: MapField.MapFieldType
    SET: MapField.MapFieldType
    REGISTER: MapField.MapFieldType
    FLAG: MapField.MapFieldType
    MAP: MapField.MapFieldType
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    type: MapField.MapFieldType
    def __init__(self, name: _Optional[bytes] = ..., type: _Optional[_Union[MapField.MapFieldType, str]] = ...) -> None: ...

class MapEntry(_message.Message):
    __slots__ = ("field", "counter_value", "set_value", "register_value", "flag_value", "map_value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    COUNTER_VALUE_FIELD_NUMBER: _ClassVar[int]
    SET_VALUE_FIELD_NUMBER: _ClassVar[int]
    REGISTER_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLAG_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: MapField
    counter_value: int
    set_value: _containers.RepeatedScalarFieldContainer[bytes]
    register_value: bytes
    flag_value: bool
    map_value: _containers.RepeatedCompositeFieldContainer[MapEntry]
    def __init__(self, field: _Optional[_Union[MapField, _Mapping]] = ..., counter_value: _Optional[int] = ..., set_value: _Optional[_Iterable[bytes]] = ..., register_value: _Optional[bytes] = ..., flag_value: _Optional[bool] = ..., map_value: _Optional[_Iterable[_Union[MapEntry, _Mapping]]] = ...) -> None: ...

class DtFetchReq(_message.Message):
    __slots__ = ("bucket", "key", "type", "r", "pr", "basic_quorum", "notfound_ok", "timeout", "sloppy_quorum", "n_val", "include_context", "node_confirms")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    PR_FIELD_NUMBER: _ClassVar[int]
    BASIC_QUORUM_FIELD_NUMBER: _ClassVar[int]
    NOTFOUND_OK_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SLOPPY_QUORUM_FIELD_NUMBER: _ClassVar[int]
    N_VAL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NODE_CONFIRMS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    type: bytes
    r: int
    pr: int
    basic_quorum: bool
    notfound_ok: bool
    timeout: int
    sloppy_quorum: bool
    n_val: int
    include_context: bool
    node_confirms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., type: _Optional[bytes] = ..., r: _Optional[int] = ..., pr: _Optional[int] = ..., basic_quorum: _Optional[bool] = ..., notfound_ok: _Optional[bool] = ..., timeout: _Optional[int] = ..., sloppy_quorum: _Optional[bool] = ..., n_val: _Optional[int] = ..., include_context: _Optional[bool] = ..., node_confirms: _Optional[int] = ...) -> None: ...

class DtValue(_message.Message):
    __slots__ = ("counter_value", "set_value", "map_value", "hll_value", "gset_value")
    COUNTER_VALUE_FIELD_NUMBER: _ClassVar[int]
    SET_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    HLL_VALUE_FIELD_NUMBER: _ClassVar[int]
    GSET_VALUE_FIELD_NUMBER: _ClassVar[int]
    counter_value: int
    set_value: _containers.RepeatedScalarFieldContainer[bytes]
    map_value: _containers.RepeatedCompositeFieldContainer[MapEntry]
    hll_value: int
    gset_value: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, counter_value: _Optional[int] = ..., set_value: _Optional[_Iterable[bytes]] = ..., map_value: _Optional[_Iterable[_Union[MapEntry, _Mapping]]] = ..., hll_value: _Optional[int] = ..., gset_value: _Optional[_Iterable[bytes]] = ...) -> None: ...

class DtFetchResp(_message.Message):
    __slots__ = ("context", "type", "value")
    class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        COUNTER: _ClassVar[DtFetchResp.DataType]
        SET: _ClassVar[DtFetchResp.DataType]
        MAP: _ClassVar[DtFetchResp.DataType]
        HLL: _ClassVar[DtFetchResp.DataType]
        GSET: _ClassVar[DtFetchResp.DataType]
    COUNTER: DtFetchResp.DataType
    SET: DtFetchResp.DataType
    MAP: DtFetchResp.DataType
    HLL: DtFetchResp.DataType
    GSET: DtFetchResp.DataType
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    context: bytes
    type: DtFetchResp.DataType
    value: DtValue
    def __init__(self, context: _Optional[bytes] = ..., type: _Optional[_Union[DtFetchResp.DataType, str]] = ..., value: _Optional[_Union[DtValue, _Mapping]] = ...) -> None: ...

class CounterOp(_message.Message):
    __slots__ = ("increment",)
    INCREMENT_FIELD_NUMBER: _ClassVar[int]
    increment: int
    def __init__(self, increment: _Optional[int] = ...) -> None: ...

class SetOp(_message.Message):
    __slots__ = ("adds", "removes")
    ADDS_FIELD_NUMBER: _ClassVar[int]
    REMOVES_FIELD_NUMBER: _ClassVar[int]
    adds: _containers.RepeatedScalarFieldContainer[bytes]
    removes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, adds: _Optional[_Iterable[bytes]] = ..., removes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GSetOp(_message.Message):
    __slots__ = ("adds",)
    ADDS_FIELD_NUMBER: _ClassVar[int]
    adds: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, adds: _Optional[_Iterable[bytes]] = ...) -> None: ...

class HllOp(_message.Message):
    __slots__ = ("adds",)
    ADDS_FIELD_NUMBER: _ClassVar[int]
    adds: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, adds: _Optional[_Iterable[bytes]] = ...) -> None: ...

class MapUpdate(_message.Message):
    __slots__ = ("field", "counter_op", "set_op", "register_op", "flag_op", "map_op")
    class FlagOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENABLE: _ClassVar[MapUpdate.FlagOp]
        DISABLE: _ClassVar[MapUpdate.FlagOp]
    ENABLE: MapUpdate.FlagOp
    DISABLE: MapUpdate.FlagOp
    FIELD_FIELD_NUMBER: _ClassVar[int]
    COUNTER_OP_FIELD_NUMBER: _ClassVar[int]
    SET_OP_FIELD_NUMBER: _ClassVar[int]
    REGISTER_OP_FIELD_NUMBER: _ClassVar[int]
    FLAG_OP_FIELD_NUMBER: _ClassVar[int]
    MAP_OP_FIELD_NUMBER: _ClassVar[int]
    field: MapField
    counter_op: CounterOp
    set_op: SetOp
    register_op: bytes
    flag_op: MapUpdate.FlagOp
    map_op: MapOp
    def __init__(self, field: _Optional[_Union[MapField, _Mapping]] = ..., counter_op: _Optional[_Union[CounterOp, _Mapping]] = ..., set_op: _Optional[_Union[SetOp, _Mapping]] = ..., register_op: _Optional[bytes] = ..., flag_op: _Optional[_Union[MapUpdate.FlagOp, str]] = ..., map_op: _Optional[_Union[MapOp, _Mapping]] = ...) -> None: ...

class MapOp(_message.Message):
    __slots__ = ("removes", "updates")
    REMOVES_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    removes: _containers.RepeatedCompositeFieldContainer[MapField]
    updates: _containers.RepeatedCompositeFieldContainer[MapUpdate]
    def __init__(self, removes: _Optional[_Iterable[_Union[MapField, _Mapping]]] = ..., updates: _Optional[_Iterable[_Union[MapUpdate, _Mapping]]] = ...) -> None: ...

class DtOp(_message.Message):
    __slots__ = ("counter_op", "set_op", "map_op", "hll_op", "gset_op")
    COUNTER_OP_FIELD_NUMBER: _ClassVar[int]
    SET_OP_FIELD_NUMBER: _ClassVar[int]
    MAP_OP_FIELD_NUMBER: _ClassVar[int]
    HLL_OP_FIELD_NUMBER: _ClassVar[int]
    GSET_OP_FIELD_NUMBER: _ClassVar[int]
    counter_op: CounterOp
    set_op: SetOp
    map_op: MapOp
    hll_op: HllOp
    gset_op: GSetOp
    def __init__(self, counter_op: _Optional[_Union[CounterOp, _Mapping]] = ..., set_op: _Optional[_Union[SetOp, _Mapping]] = ..., map_op: _Optional[_Union[MapOp, _Mapping]] = ..., hll_op: _Optional[_Union[HllOp, _Mapping]] = ..., gset_op: _Optional[_Union[GSetOp, _Mapping]] = ...) -> None: ...

class DtUpdateReq(_message.Message):
    __slots__ = ("bucket", "key", "type", "context", "op", "w", "dw", "pw", "return_body", "timeout", "sloppy_quorum", "n_val", "include_context", "node_confirms")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    W_FIELD_NUMBER: _ClassVar[int]
    DW_FIELD_NUMBER: _ClassVar[int]
    PW_FIELD_NUMBER: _ClassVar[int]
    RETURN_BODY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SLOPPY_QUORUM_FIELD_NUMBER: _ClassVar[int]
    N_VAL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NODE_CONFIRMS_FIELD_NUMBER: _ClassVar[int]
    bucket: bytes
    key: bytes
    type: bytes
    context: bytes
    op: DtOp
    w: int
    dw: int
    pw: int
    return_body: bool
    timeout: int
    sloppy_quorum: bool
    n_val: int
    include_context: bool
    node_confirms: int
    def __init__(self, bucket: _Optional[bytes] = ..., key: _Optional[bytes] = ..., type: _Optional[bytes] = ..., context: _Optional[bytes] = ..., op: _Optional[_Union[DtOp, _Mapping]] = ..., w: _Optional[int] = ..., dw: _Optional[int] = ..., pw: _Optional[int] = ..., return_body: _Optional[bool] = ..., timeout: _Optional[int] = ..., sloppy_quorum: _Optional[bool] = ..., n_val: _Optional[int] = ..., include_context: _Optional[bool] = ..., node_confirms: _Optional[int] = ...) -> None: ...

class DtUpdateResp(_message.Message):
    __slots__ = ("key", "context", "counter_value", "set_value", "map_value", "hll_value", "gset_value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    COUNTER_VALUE_FIELD_NUMBER: _ClassVar[int]
    SET_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    HLL_VALUE_FIELD_NUMBER: _ClassVar[int]
    GSET_VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    context: bytes
    counter_value: int
    set_value: _containers.RepeatedScalarFieldContainer[bytes]
    map_value: _containers.RepeatedCompositeFieldContainer[MapEntry]
    hll_value: int
    gset_value: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, key: _Optional[bytes] = ..., context: _Optional[bytes] = ..., counter_value: _Optional[int] = ..., set_value: _Optional[_Iterable[bytes]] = ..., map_value: _Optional[_Iterable[_Union[MapEntry, _Mapping]]] = ..., hll_value: _Optional[int] = ..., gset_value: _Optional[_Iterable[bytes]] = ...) -> None: ...
