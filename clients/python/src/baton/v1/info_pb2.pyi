from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("service", "version", "git_revision", "uptime_seconds")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GIT_REVISION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    git_revision: str
    uptime_seconds: int
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., git_revision: _Optional[str] = ..., uptime_seconds: _Optional[int] = ...) -> None: ...
