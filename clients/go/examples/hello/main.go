// Command hello registers a workflow, starts a run, follows it to the end and prints its steps.
//
// Usage: BATON_ADDR=127.0.0.1:8002 BATON_TOKEN=$(baton auth token) go run ./examples/hello [workflow.yaml]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	batonv1 "github.com/baton-run/baton/clients/go/baton/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Bearer sends `authorization: Bearer <token>` with every call. Baton serves plaintext unless
// it is put behind TLS, so it does not insist on a secure transport.
type Bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (Bearer) RequireTransportSecurity() bool { return false }

// DialOptions reach Baton in plaintext and, when token is set, send it on every call. Behind
// TLS, use grpc.WithTransportCredentials instead of grpc.WithInsecure.
func DialOptions(token string) []grpc.DialOption {
	options := []grpc.DialOption{grpc.WithInsecure()}
	if token != "" {
		options = append(options, grpc.WithPerRPCCredentials(Bearer(token)))
	}
	return options
}

// Inputs are the run's inputs, as JSON.
const Inputs = `{"name":"Ada","count":3}`

// DefaultWorkflow is examples/hello.yaml at the repository root.
func DefaultWorkflow() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "examples", "hello.yaml")
}

func short(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

func runEnded(t batonv1.RunEventType) bool {
	switch t {
	case batonv1.RunEventType_RUN_EVENT_TYPE_RUN_COMPLETED,
		batonv1.RunEventType_RUN_EVENT_TYPE_RUN_FAILED,
		batonv1.RunEventType_RUN_EVENT_TYPE_RUN_CANCELLED,
		batonv1.RunEventType_RUN_EVENT_TYPE_RUN_TIMED_OUT:
		return true
	}
	return false
}

// RunExample runs definition with inputs, printing progress to out, and returns the finished run
// with the events WatchRun sent for it.
func RunExample(ctx context.Context, conn *grpc.ClientConn, definition, inputs string, out io.Writer) (*batonv1.Run, []*batonv1.RunEvent, error) {
	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("health check: %w", err)
	}
	fmt.Fprintf(out, "health: %s\n", health.Status)
	if health.Status != healthpb.HealthCheckResponse_SERVING {
		return nil, nil, fmt.Errorf("Baton is not serving (is its Postgres or Redis down?)")
	}

	registered, err := batonv1.NewWorkflowServiceClient(conn).RegisterWorkflow(ctx, &batonv1.RegisterWorkflowRequest{
		Definition: definition,
		Format:     batonv1.DefinitionFormat_DEFINITION_FORMAT_YAML,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("register: %w", err)
	}
	ref := registered.Workflow.WorkflowRef
	state := "unchanged"
	if registered.Created {
		state = "new"
	}
	fmt.Fprintf(out, "registered %s (%s)\n", ref, state)

	runs := batonv1.NewRunServiceClient(conn)
	started, err := runs.StartRun(ctx, &batonv1.StartRunRequest{WorkflowRef: ref, InputsJson: inputs})
	if err != nil {
		return nil, nil, fmt.Errorf("start: %w", err)
	}
	runID := started.Run.Id
	fmt.Fprintf(out, "started run %s\n", runID)

	// Leaving the loop does not end the call; cancelling its context does.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := runs.WatchRun(watchCtx, &batonv1.WatchRunRequest{RunId: runID})
	if err != nil {
		return nil, nil, fmt.Errorf("watch: %w", err)
	}
	var events []*batonv1.RunEvent
	for {
		update, err := watch.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("watch: %w", err)
		}
		event := update.Event
		if event == nil {
			return nil, nil, fmt.Errorf("watch: an update without an event")
		}
		events = append(events, event)
		line := fmt.Sprintf("  [%3d] %s", event.Sequence, short(event.Type.String(), "RUN_EVENT_TYPE_"))
		if event.StepId != "" {
			line += fmt.Sprintf(" %s#%d", event.StepId, event.Attempt)
		}
		if event.Message != "" {
			line += " " + event.Message
		}
		fmt.Fprintln(out, line)
		if runEnded(event.Type) {
			break
		}
	}

	got, err := runs.GetRun(ctx, &batonv1.GetRunRequest{RunId: runID})
	if err != nil {
		return nil, nil, fmt.Errorf("get run: %w", err)
	}
	run := got.Run
	fmt.Fprintf(out, "run %s: %s\n", run.Id, short(run.Status.String(), "RUN_STATUS_"))
	for _, step := range run.Steps {
		result := step.OutputJson
		if result == "" {
			result = step.Error
		}
		fmt.Fprintf(out, "  %-8s %-10s attempts=%d %s\n",
			step.StepId, short(step.Status.String(), "STEP_STATUS_"), len(step.Attempts), result)
	}
	return run, events, nil
}

func main() {
	addr := os.Getenv("BATON_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8002"
	}
	path := DefaultWorkflow()
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	definition, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// An API key (`baton auth key create`, or `baton auth token` for the one the CLI uses).
	token := os.Getenv("BATON_TOKEN")
	conn, err := grpc.DialContext(ctx, addr, DialOptions(token)...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: connect %s: %v\n", addr, err)
		os.Exit(1)
	}
	defer conn.Close()
	run, _, err := RunExample(ctx, conn, string(definition), Inputs, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		if status.Code(err) == codes.Unauthenticated {
			fmt.Fprintln(os.Stderr, "hint: set BATON_TOKEN to an API key: export BATON_TOKEN=$(baton auth token)")
		}
		os.Exit(1)
	}
	if run.Status != batonv1.RunStatus_RUN_STATUS_COMPLETED {
		os.Exit(1)
	}
}
