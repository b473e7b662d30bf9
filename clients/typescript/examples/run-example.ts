// The example's work, shared by the Node program (hello.ts) and the browser test: check health,
// register a workflow, start a run, follow it to the end and print its steps.
import type { RpcTransport } from "@protobuf-ts/runtime-rpc";
import {
  DefinitionFormat,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthClient,
  RegisterWorkflowRequest,
  Run,
  RunEvent,
  RunEventType,
  RunServiceClient,
  RunStatus,
  StepStatus,
  WorkflowServiceClient,
} from "../src";

export const INPUTS = { name: "Ada", count: 3 };

export const RUN_ENDED = new Set([
  RunEventType.RUN_COMPLETED,
  RunEventType.RUN_FAILED,
  RunEventType.RUN_CANCELLED,
  RunEventType.RUN_TIMED_OUT,
]);

const lower = (name: string | undefined) => (name ?? "unknown").toLowerCase();

/** A finished run, and the events WatchRun sent while following it. */
export interface ExampleResult {
  run: Run;
  events: RunEvent[];
}

/** Runs `definition` with `inputs`, printing progress through `log`. */
export async function runExample(
  transport: RpcTransport,
  definition: string,
  inputs: object,
  log: (line: string) => void = console.log,
): Promise<ExampleResult> {
  const health = await new HealthClient(transport).check({ service: "" }).response;
  log(`health: ${ServingStatus[health.status]}`);
  if (health.status !== ServingStatus.SERVING) {
    throw new Error("Baton is not serving (is its Postgres or Redis down?)");
  }

  // `create` fills the fields left out with their defaults (the tenant: the caller's).
  const { response: registered } = await new WorkflowServiceClient(transport).registerWorkflow(
    RegisterWorkflowRequest.create({ definition, format: DefinitionFormat.YAML }),
  );
  const ref = registered.workflow!.workflowRef;
  log(`registered ${ref} (${registered.created ? "new" : "unchanged"})`);

  const runs = new RunServiceClient(transport);
  const { response: started } = await runs.startRun({
    workflowRef: ref,
    inputsJson: JSON.stringify(inputs),
    idempotencyKey: "",
    tenant: "",
  });
  const runId = started.run!.id;
  log(`started run ${runId}`);

  const events: RunEvent[] = [];
  // Leaving the loop does not end the call; the abort does. Its status is not awaited: over
  // gRPC-Web from Node an aborted call's status may never settle.
  const abort = new AbortController();
  const watch = runs.watchRun({ runId, afterSequence: "0" }, { abort: abort.signal });
  try {
    for await (const { event } of watch.responses) {
      if (!event) throw new Error("WatchRun sent an update without an event");
      events.push(event);
      const where = event.stepId ? ` ${event.stepId}#${event.attempt}` : "";
      const detail = event.message ? ` ${event.message}` : "";
      log(`  [${event.sequence.padStart(3)}] ${lower(RunEventType[event.type])}${where}${detail}`);
      if (RUN_ENDED.has(event.type)) break;
    }
  } finally {
    abort.abort();
    watch.status.catch(() => undefined);
  }

  const { response } = await runs.getRun({ runId });
  const run = response.run!;
  log(`run ${run.id}: ${lower(RunStatus[run.status])}`);
  for (const step of run.steps) {
    const result = step.outputJson || step.error;
    log(
      `  ${step.stepId.padEnd(8)} ${lower(StepStatus[step.status]).padEnd(10)} ` +
        `attempts=${step.attempts.length} ${result}`,
    );
  }
  return { run, events };
}
