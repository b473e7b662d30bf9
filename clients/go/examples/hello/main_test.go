package main

// End to end against a running Baton at BATON_ADDR (the Rust test harness starts one per run):
// BATON_ADDR=127.0.0.1:8002 go test ./examples/hello

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	batonv1 "github.com/baton-run/baton/clients/go/baton/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func dial(t *testing.T) (context.Context, *grpc.ClientConn) {
	t.Helper()
	addr := os.Getenv("BATON_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8002"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	conn, err := grpc.DialContext(ctx, addr, grpc.WithInsecure(), grpc.WithBlock())
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

func TestHelloExampleRunsToCompletion(t *testing.T) {
	ctx, conn := dial(t)
	definition, err := os.ReadFile(DefaultWorkflow())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run, err := RunExample(ctx, conn, string(definition), Inputs, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	printed := out.String()
	if run.Status != batonv1.RunStatus_RUN_STATUS_COMPLETED {
		t.Fatalf("run %s: %s\n%s", run.Id, run.Status, printed)
	}
	steps := map[string]*batonv1.StepRun{}
	for _, step := range run.Steps {
		steps[step.StepId] = step
		if step.Status != batonv1.StepStatus_STEP_STATUS_COMPLETED {
			t.Errorf("step %s: %s", step.StepId, step.Status)
		}
	}
	if len(steps) != 4 || steps["join"] == nil {
		t.Fatalf("steps: %v", run.Steps)
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
