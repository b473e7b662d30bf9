from baton.v1 import auth_pb2 as _auth_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("service", "version", "git_revision", "uptime_seconds", "auth_mode", "principal", "tenant", "role")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GIT_REVISION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AUTH_MODE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    git_revision: str
    uptime_seconds: int
    auth_mode: str
    principal: str
    tenant: str
    role: _auth_pb2.Role
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., git_revision: _Optional[str] = ..., uptime_seconds: _Optional[int] = ..., auth_mode: _Optional[str] = ..., principal: _Optional[str] = ..., tenant: _Optional[str] = ..., role: _Optional[_Union[_auth_pb2.Role, str]] = ...) -> None: ...
