"""End to end against a running Baton at BATON_ADDR with an API key in BATON_TOKEN (the Rust
test harness starts one per run).

Run with: BATON_ADDR=127.0.0.1:8002 BATON_TOKEN=bk_... python -m pytest clients/python
"""

from __future__ import annotations

import io
import json
import os
import re

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import hello
from baton.v1 import run_pb2, run_pb2_grpc, workflow_pb2, workflow_pb2_grpc

ADDR = os.environ.get("BATON_ADDR", "127.0.0.1:8002")
TOKEN = os.environ.get("BATON_TOKEN", "")
UNKNOWN_KEY = "bk_0000000000000000_" + "0" * 64
# Generous for a loaded machine, and still inside the harness's own limit (clients.rs).
TIMEOUT = 30
# The example prints each event WatchRun sent as `  [  7] step_started left#1 ...`.
EVENT_LINE = re.compile(r"^  \[ *(\d+)\] (\w+)(?: (\w+)#\d+)?", re.MULTILINE)
TERMINAL = {run_pb2.RunEventType.Name(t).removeprefix("RUN_EVENT_TYPE_") for t in hello.RUN_ENDED}


@pytest.fixture(scope="module")
def channel():
    if not TOKEN:
        pytest.fail("BATON_TOKEN is not set: these tests need an API key")
    with hello.connect(ADDR, TOKEN) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield channel


def test_health_check_and_watch(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "baton.v1.WorkflowService", "baton.v1.RunService", "baton.v1.InfoService"]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as unknown:
        health.Check(health_pb2.HealthCheckRequest(service="baton.v1.Nope"), timeout=TIMEOUT)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    first = next(watch, None)
    watch.cancel()
    assert first is not None, "Watch sent no update"
    assert first.status == health_pb2.HealthCheckResponse.SERVING


def assert_whole_run(events: list[tuple[int, str, str]]) -> None:
    """Asserts (sequence, type, step) are a whole run as WatchRun promises it: sequences 1, 2, ...
    without gaps, from run_queued to the run's one terminal event, run_completed, last."""
    assert events, "WatchRun sent no events"
    assert [sequence for sequence, _, _ in events] == list(range(1, len(events) + 1)), events
    ended = [kind for _, kind, _ in events if kind.upper() in TERMINAL]
    assert ended == ["run_completed"], events
    assert events[0][1] == "run_queued", events
    assert events[-1][1] == "run_completed", events


def test_hello_example_runs_to_completion(channel):
    out = io.StringIO()
    run = hello.run_example(channel, hello.DEFAULT_WORKFLOW.read_text(), hello.INPUTS, out)
    printed = out.getvalue()
    watched = [(int(seq), kind, step) for seq, kind, step in EVENT_LINE.findall(printed)]
    assert_whole_run(watched)
    assert run.status == run_pb2.RUN_STATUS_COMPLETED, printed
    steps = {step.step_id: step for step in run.steps}
    assert set(steps) == {"greet", "left", "right", "join"}
    assert all(s.status == run_pb2.STEP_STATUS_COMPLETED for s in steps.values()), printed
    # `left` fails once by design, then its retry succeeds.
    assert [a.status for a in steps["left"].attempts] == [
        run_pb2.STEP_STATUS_FAILED,
        run_pb2.STEP_STATUS_COMPLETED,
    ]
    assert json.loads(steps["join"].output_json) == {"total": 3, "text": "Hello, Ada!"}
    assert "step_retrying left#1" in printed, printed
    assert f"run {run.id}: completed" in printed
    table = [line.split()[:2] for line in printed.splitlines()]
    assert ["join", "completed"] in table, printed

    # Watching the finished run replays the same events, then the stream ends by itself.
    runs = run_pb2_grpc.RunServiceStub(channel)
    replayed = [
        (
            update.event.sequence,
            hello.short(run_pb2.RunEventType.Name(update.event.type), "RUN_EVENT_TYPE_"),
            update.event.step_id,
        )
        for update in runs.WatchRun(run_pb2.WatchRunRequest(run_id=run.id), timeout=TIMEOUT)
    ]
    assert replayed == watched, printed


def test_bad_requests_get_clear_errors(channel):
    runs = run_pb2_grpc.RunServiceStub(channel)
    with pytest.raises(grpc.RpcError) as missing:
        runs.StartRun(run_pb2.StartRunRequest(workflow_ref="nobody/missing@1"), timeout=TIMEOUT)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nobody/missing@1" in missing.value.details()

    workflows = workflow_pb2_grpc.WorkflowServiceStub(channel)
    with pytest.raises(grpc.RpcError) as invalid:
        workflows.RegisterWorkflow(
            workflow_pb2.RegisterWorkflowRequest(
                definition="owner: t\nname: broken\nversion: 1\nsteps:\n"
                "  - id: a\n    kind: echo\n    needs: [ghost]\n",
                format=workflow_pb2.DEFINITION_FORMAT_YAML,
            ),
            timeout=TIMEOUT,
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ghost" in invalid.value.details()


@pytest.mark.parametrize("token", ["", UNKNOWN_KEY], ids=["no token", "an unknown key"])
def test_calls_without_a_valid_token_are_unauthenticated(token):
    with hello.connect(ADDR, token) as channel:
        # Health needs no credential, so probes work without a secret.
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        runs = run_pb2_grpc.RunServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            runs.ListRuns(run_pb2.ListRunsRequest(), timeout=TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as watched:
            list(runs.WatchRun(run_pb2.WatchRunRequest(run_id="r"), timeout=TIMEOUT))
        assert watched.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_reflection_answers_grpcio_reflection_which_speaks_only_v1alpha(channel):
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    for expected in ("baton.v1.RunService", "baton.v1.AuthService", "grpc.health.v1.Health"):
        assert expected in services, services
    run_service = DescriptorPool(database).FindServiceByName("baton.v1.RunService")
    assert "WatchRun" in [method.name for method in run_service.methods]


def test_reflection_needs_a_key():
    with hello.connect(ADDR, "") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
