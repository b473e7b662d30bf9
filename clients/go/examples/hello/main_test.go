package main

// End to end against a running Baton at BATON_ADDR with an API key in BATON_TOKEN (the Rust
// test harness starts one per run): BATON_ADDR=127.0.0.1:8002 BATON_TOKEN=bk_... go test ./examples/hello

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	batonv1 "github.com/baton-run/baton/clients/go/baton/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// dial connects with the API key in BATON_TOKEN.
func dial(t *testing.T) (context.Context, *grpc.ClientConn) {
	t.Helper()
	token := os.Getenv("BATON_TOKEN")
	if token == "" {
		t.Fatal("BATON_TOKEN is not set: these tests need an API key (export BATON_TOKEN=$(baton auth token))")
	}
	return dialWith(t, token)
}

// dialWith connects sending token on every call, or no token when it is empty.
func dialWith(t *testing.T, token string) (context.Context, *grpc.ClientConn) {
	t.Helper()
	addr := os.Getenv("BATON_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8002"
	}
	// Generous for a loaded machine, and still inside the harness's own limit (clients.rs).
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	conn, err := grpc.DialContext(ctx, addr, append(DialOptions(token), grpc.WithBlock())...)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return ctx, conn
}

func TestHealthCheckAndWatch(t *testing.T) {
	ctx, conn := dial(t)
	health := healthpb.NewHealthClient(conn)
	for _, service := range []string{"", "baton.v1.WorkflowService", "baton.v1.RunService", "baton.v1.InfoService"} {
		reply, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || reply.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) = %v, %v; want SERVING", service, reply, err)
		}
	}
	_, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "baton.v1.Nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v; want NotFound", err)
	}
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	watch, err := health.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first update = %v, %v; want SERVING", first, err)
	}
}

// checkRunEvents fails unless events are a whole run as WatchRun promises it: sequences 1, 2, ...
// without gaps, from RUN_QUEUED to the run's one terminal event, RUN_COMPLETED, last.
func checkRunEvents(t *testing.T, runID string, events []*batonv1.RunEvent) {
	t.Helper()
	if len(events) == 0 {
		t.Fatalf("WatchRun sent no events for run %s", runID)
	}
	for i, event := range events {
		if event.RunId != runID || event.Sequence != int64(i+1) {
			t.Fatalf("event %d is run %s sequence %d; want run %s sequence %d", i, event.RunId, event.Sequence, runID, i+1)
		}
		if runEnded(event.Type) != (i == len(events)-1) {
			t.Fatalf("event %d of %d is %s: the run's terminal event must come last, once", i+1, len(events), event.Type)
		}
	}
	if first := events[0].Type; first != batonv1.RunEventType_RUN_EVENT_TYPE_RUN_QUEUED {
		t.Errorf("first event %s; want RUN_QUEUED", first)
	}
	if last := events[len(events)-1].Type; last != batonv1.RunEventType_RUN_EVENT_TYPE_RUN_COMPLETED {
		t.Errorf("last event %s; want RUN_COMPLETED", last)
	}
}

func TestHelloExampleRunsToCompletion(t *testing.T) {
	ctx, conn := dial(t)
	definition, err := os.ReadFile(DefaultWorkflow())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run, events, err := RunExample(ctx, conn, string(definition), Inputs, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	printed := out.String()
	checkRunEvents(t, run.Id, events)
	if run.Status != batonv1.RunStatus_RUN_STATUS_COMPLETED {
		t.Fatalf("run %s: %s\n%s", run.Id, run.Status, printed)
	}
	steps := map[string]*batonv1.StepRun{}
	var names []string
	for _, step := range run.Steps {
		steps[step.StepId] = step
		names = append(names, step.StepId)
		if step.Status != batonv1.StepStatus_STEP_STATUS_COMPLETED {
			t.Errorf("step %s: %s", step.StepId, step.Status)
		}
	}
	sort.Strings(names)
	if want := []string{"greet", "join", "left", "right"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("steps %v; want %v", names, want)
	}
	// `left` fails once by design, then its retry succeeds.
	var attempts []batonv1.StepStatus
	for _, attempt := range steps["left"].Attempts {
		attempts = append(attempts, attempt.Status)
	}
	want := []batonv1.StepStatus{batonv1.StepStatus_STEP_STATUS_FAILED, batonv1.StepStatus_STEP_STATUS_COMPLETED}
	if !reflect.DeepEqual(attempts, want) {
		t.Errorf("left attempts = %v, want %v", attempts, want)
	}
	var output map[string]interface{}
	if err := json.Unmarshal([]byte(steps["join"].OutputJson), &output); err != nil {
		t.Fatal(err)
	}
	if output["total"] != float64(3) || output["text"] != "Hello, Ada!" {
		t.Errorf("join output = %v", output)
	}
	for _, line := range []string{"step_retrying left#1", "run " + run.Id + ": completed", "join     completed"} {
		if !strings.Contains(printed, line) {
			t.Errorf("output lacks %q:\n%s", line, printed)
		}
	}

	// Watching the finished run replays the same events, then the stream ends by itself.
	replayCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	watch, err := batonv1.NewRunServiceClient(conn).WatchRun(replayCtx, &batonv1.WatchRunRequest{RunId: run.Id})
	if err != nil {
		t.Fatal(err)
	}
	var replayed []*batonv1.RunEvent
	for {
		update, err := watch.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("replay of run %s after %d events: %v", run.Id, len(replayed), err)
		}
		if update.Event == nil {
			t.Fatalf("replay of run %s: an update without an event", run.Id)
		}
		replayed = append(replayed, update.Event)
	}
	checkRunEvents(t, run.Id, replayed)
	if len(replayed) != len(events) {
		t.Fatalf("replay sent %d events; the live watch %d", len(replayed), len(events))
	}
	for i := range events {
		if replayed[i].Type != events[i].Type || replayed[i].StepId != events[i].StepId {
			t.Errorf("event %d: replayed %s %s, watched %s %s", i+1,
				replayed[i].Type, replayed[i].StepId, events[i].Type, events[i].StepId)
		}
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	ctx, conn := dial(t)
	_, err := batonv1.NewRunServiceClient(conn).StartRun(ctx, &batonv1.StartRunRequest{WorkflowRef: "nobody/missing@1"})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "nobody/missing@1") {
		t.Errorf("StartRun of an unknown workflow: %v; want NotFound naming it", err)
	}
	_, err = batonv1.NewWorkflowServiceClient(conn).RegisterWorkflow(ctx, &batonv1.RegisterWorkflowRequest{
		Definition: "owner: t\nname: broken\nversion: 1\nsteps:\n  - id: a\n    kind: echo\n    needs: [ghost]\n",
		Format:     batonv1.DefinitionFormat_DEFINITION_FORMAT_YAML,
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "ghost") {
		t.Errorf("RegisterWorkflow with an unknown need: %v; want InvalidArgument naming it", err)
	}
}

func TestCallsWithoutAValidTokenAreUnauthenticated(t *testing.T) {
	for name, token := range map[string]string{
		"no token":       "",
		"an unknown key": "bk_0000000000000000_" + strings.Repeat("0", 64),
	} {
		ctx, conn := dialWith(t, token)
		// Health needs no credential, so probes work without a secret.
		reply, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || reply.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s: health Check = %v, %v; want SERVING", name, reply, err)
		}
		_, err = batonv1.NewRunServiceClient(conn).ListRuns(ctx, &batonv1.ListRunsRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: ListRuns: %v; want Unauthenticated", name, err)
		}
		_, err = batonv1.NewWorkflowServiceClient(conn).RegisterWorkflow(ctx, &batonv1.RegisterWorkflowRequest{
			Definition: "owner: t\nname: n\nversion: 1\nsteps:\n  - {id: a, kind: echo}\n",
			Format:     batonv1.DefinitionFormat_DEFINITION_FORMAT_YAML,
		})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: RegisterWorkflow: %v; want Unauthenticated", name, err)
		}
	}
}
