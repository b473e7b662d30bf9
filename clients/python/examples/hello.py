"""Registers a workflow, starts a run, follows it to the end and prints its steps.

Usage: BATON_ADDR=127.0.0.1:8002 BATON_TOKEN=$(baton auth token) python examples/hello.py [workflow.yaml]
(with clients/python/src on PYTHONPATH, or the package installed: pip install ./clients/python)
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import sys
from typing import TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from baton.v1 import run_pb2, run_pb2_grpc, workflow_pb2, workflow_pb2_grpc

DEFAULT_WORKFLOW = pathlib.Path(__file__).resolve().parents[3] / "examples" / "hello.yaml"
INPUTS = {"name": "Ada", "count": 3}
RUN_ENDED = {
    run_pb2.RUN_EVENT_TYPE_RUN_COMPLETED,
    run_pb2.RUN_EVENT_TYPE_RUN_FAILED,
    run_pb2.RUN_EVENT_TYPE_RUN_CANCELLED,
    run_pb2.RUN_EVENT_TYPE_RUN_TIMED_OUT,
}


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Sends `authorization: Bearer <token>` with every call.

    An interceptor rather than grpc.access_token_call_credentials, which gRPC sends only over
    TLS: Baton serves plaintext unless it is put behind TLS.
    """

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._header],
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_token(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_token(client_call_details), request_iterator)


def connect(addr: str, token: str | None) -> grpc.Channel:
    """A plaintext channel to `addr` that sends `token` on every call (none when it is empty).
    Behind TLS, start from grpc.secure_channel instead."""
    channel = grpc.insecure_channel(addr)
    return grpc.intercept_channel(channel, BearerToken(token)) if token else channel


def short(enum_name: str, prefix: str) -> str:
    """RUN_EVENT_TYPE_STEP_COMPLETED -> step_completed."""
    return enum_name.removeprefix(prefix).lower()


def run_example(channel: grpc.Channel, definition: str, inputs: dict, out: TextIO) -> run_pb2.Run:
    """Runs `definition` with `inputs` and returns the finished run."""
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    print(f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}", file=out)
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError("Baton is not serving (is its Postgres or Redis down?)")

    workflows = workflow_pb2_grpc.WorkflowServiceStub(channel)
    registered = workflows.RegisterWorkflow(
        workflow_pb2.RegisterWorkflowRequest(
            definition=definition, format=workflow_pb2.DEFINITION_FORMAT_YAML
        ),
        timeout=10,
    )
    ref = registered.workflow.workflow_ref
    print(f"registered {ref} ({'new' if registered.created else 'unchanged'})", file=out)

    runs = run_pb2_grpc.RunServiceStub(channel)
    started = runs.StartRun(
        run_pb2.StartRunRequest(workflow_ref=ref, inputs_json=json.dumps(inputs)), timeout=10
    )
    run_id = started.run.id
    print(f"started run {run_id}", file=out)

    # Cancelled on leaving the loop, so the call does not stay open after the run's last event.
    watch = runs.WatchRun(run_pb2.WatchRunRequest(run_id=run_id), timeout=120)
    for update in watch:
        event = update.event
        kind = short(run_pb2.RunEventType.Name(event.type), "RUN_EVENT_TYPE_")
        where = f" {event.step_id}#{event.attempt}" if event.step_id else ""
        detail = f" {event.message}" if event.message else ""
        print(f"  [{event.sequence:>3}] {kind}{where}{detail}", file=out)
        if event.type in RUN_ENDED:
            watch.cancel()
            break

    run = runs.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=10).run
    print(f"run {run.id}: {short(run_pb2.RunStatus.Name(run.status), 'RUN_STATUS_')}", file=out)
    for step in run.steps:
        status = short(run_pb2.StepStatus.Name(step.status), "STEP_STATUS_")
        result = step.output_json or step.error
        print(f"  {step.step_id:<8} {status:<10} attempts={len(step.attempts)} {result}", file=out)
    return run


def main() -> int:
    addr = os.environ.get("BATON_ADDR", "127.0.0.1:8002")
    # An API key (`baton auth key create`, or `baton auth token` for the one the CLI uses).
    token = os.environ.get("BATON_TOKEN")
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_WORKFLOW
    with connect(addr, token) as channel:
        try:
            run = run_example(channel, path.read_text(), INPUTS, sys.stdout)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                print(
                    "hint: set BATON_TOKEN to an API key: export BATON_TOKEN=$(baton auth token)",
                    file=sys.stderr,
                )
            return 1
    return 0 if run.status == run_pb2.RUN_STATUS_COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
