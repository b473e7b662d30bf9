import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_QUEUED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_TIMED_OUT: _ClassVar[RunStatus]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_PENDING: _ClassVar[StepStatus]
    STEP_STATUS_QUEUED: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_RETRYING: _ClassVar[StepStatus]
    STEP_STATUS_COMPLETED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_SKIPPED: _ClassVar[StepStatus]
    STEP_STATUS_CANCELLED: _ClassVar[StepStatus]

class RunEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_EVENT_TYPE_UNSPECIFIED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_RUN_QUEUED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_RUN_STARTED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_RUN_COMPLETED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_RUN_FAILED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_RUN_CANCELLED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_RUN_TIMED_OUT: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_QUEUED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_STARTED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_COMPLETED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_FAILED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_RETRYING: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_SKIPPED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_CANCELLED: _ClassVar[RunEventType]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_QUEUED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_TIMED_OUT: RunStatus
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_PENDING: StepStatus
STEP_STATUS_QUEUED: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_RETRYING: StepStatus
STEP_STATUS_COMPLETED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_SKIPPED: StepStatus
STEP_STATUS_CANCELLED: StepStatus
RUN_EVENT_TYPE_UNSPECIFIED: RunEventType
RUN_EVENT_TYPE_RUN_QUEUED: RunEventType
RUN_EVENT_TYPE_RUN_STARTED: RunEventType
RUN_EVENT_TYPE_RUN_COMPLETED: RunEventType
RUN_EVENT_TYPE_RUN_FAILED: RunEventType
RUN_EVENT_TYPE_RUN_CANCELLED: RunEventType
RUN_EVENT_TYPE_RUN_TIMED_OUT: RunEventType
RUN_EVENT_TYPE_STEP_QUEUED: RunEventType
RUN_EVENT_TYPE_STEP_STARTED: RunEventType
RUN_EVENT_TYPE_STEP_COMPLETED: RunEventType
RUN_EVENT_TYPE_STEP_FAILED: RunEventType
RUN_EVENT_TYPE_STEP_RETRYING: RunEventType
RUN_EVENT_TYPE_STEP_SKIPPED: RunEventType
RUN_EVENT_TYPE_STEP_CANCELLED: RunEventType

class Run(_message.Message):
    __slots__ = ("id", "workflow_ref", "tenant", "status", "inputs_json", "output_json", "error", "idempotency_key", "created_at", "started_at", "ended_at", "steps", "last_sequence", "workers")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_REF_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow_ref: str
    tenant: str
    status: RunStatus
    inputs_json: str
    output_json: str
    error: str
    idempotency_key: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    steps: _containers.RepeatedCompositeFieldContainer[StepRun]
    last_sequence: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerHost]
    def __init__(self, id: _Optional[str] = ..., workflow_ref: _Optional[str] = ..., tenant: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., inputs_json: _Optional[str] = ..., output_json: _Optional[str] = ..., error: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[StepRun, _Mapping]]] = ..., last_sequence: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerHost, _Mapping]]] = ...) -> None: ...

class StepRun(_message.Message):
    __slots__ = ("step_id", "kind", "status", "attempt", "output_json", "error", "queued_at", "started_at", "ended_at", "attempts")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    kind: str
    status: StepStatus
    attempt: int
    output_json: str
    error: str
    queued_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    attempts: _containers.RepeatedCompositeFieldContainer[StepAttempt]
    def __init__(self, step_id: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., attempt: _Optional[int] = ..., output_json: _Optional[str] = ..., error: _Optional[str] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[StepAttempt, _Mapping]]] = ...) -> None: ...

class StepAttempt(_message.Message):
    __slots__ = ("attempt", "status", "error", "worker_id", "queued_at", "started_at", "ended_at", "queue_time_ms", "execution_time_ms", "usage")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    status: StepStatus
    error: str
    worker_id: str
    queued_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    queue_time_ms: int
    execution_time_ms: int
    usage: ResourceUsage
    def __init__(self, attempt: _Optional[int] = ..., status: _Optional[_Union[StepStatus, str]] = ..., error: _Optional[str] = ..., worker_id: _Optional[str] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_time_ms: _Optional[int] = ..., execution_time_ms: _Optional[int] = ..., usage: _Optional[_Union[ResourceUsage, _Mapping]] = ...) -> None: ...

class ResourceUsage(_message.Message):
    __slots__ = ("queue_time_ms", "execution_time_ms", "total_duration_ms", "memory_start_mb", "memory_peak_mb", "memory_end_mb", "cpu_percent", "thread_count")
    QUEUE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_START_MB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PEAK_MB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_END_MB_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    THREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    queue_time_ms: int
    execution_time_ms: int
    total_duration_ms: int
    memory_start_mb: float
    memory_peak_mb: float
    memory_end_mb: float
    cpu_percent: float
    thread_count: int
    def __init__(self, queue_time_ms: _Optional[int] = ..., execution_time_ms: _Optional[int] = ..., total_duration_ms: _Optional[int] = ..., memory_start_mb: _Optional[float] = ..., memory_peak_mb: _Optional[float] = ..., memory_end_mb: _Optional[float] = ..., cpu_percent: _Optional[float] = ..., thread_count: _Optional[int] = ...) -> None: ...

class WorkerHost(_message.Message):
    __slots__ = ("worker_id", "os", "arch", "hostname", "physical_cores", "logical_cores", "total_memory_mb", "runtime_version", "container_runtime", "pid")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_CORES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    os: str
    arch: str
    hostname: str
    physical_cores: int
    logical_cores: int
    total_memory_mb: float
    runtime_version: str
    container_runtime: str
    pid: int
    def __init__(self, worker_id: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ..., hostname: _Optional[str] = ..., physical_cores: _Optional[int] = ..., logical_cores: _Optional[int] = ..., total_memory_mb: _Optional[float] = ..., runtime_version: _Optional[str] = ..., container_runtime: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("workflow_ref", "inputs_json", "idempotency_key", "tenant")
    WORKFLOW_REF_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    workflow_ref: str
    inputs_json: str
    idempotency_key: str
    tenant: str
    def __init__(self, workflow_ref: _Optional[str] = ..., inputs_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run", "created")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    run: Run
    created: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("tenant", "page_size", "page_token", "workflow_ref", "status")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_REF_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    page_size: int
    page_token: str
    workflow_ref: str
    status: RunStatus
    def __init__(self, tenant: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., workflow_ref: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after_sequence")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_sequence: int
    def __init__(self, run_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchRunResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: RunEvent
    def __init__(self, event: _Optional[_Union[RunEvent, _Mapping]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "sequence", "type", "step_id", "attempt", "time", "message", "output_json", "workflow_ref", "tenant")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_REF_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sequence: int
    type: RunEventType
    step_id: str
    attempt: int
    time: _timestamp_pb2.Timestamp
    message: str
    output_json: str
    workflow_ref: str
    tenant: str
    def __init__(self, run_id: _Optional[str] = ..., sequence: _Optional[int] = ..., type: _Optional[_Union[RunEventType, str]] = ..., step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., output_json: _Optional[str] = ..., workflow_ref: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...
