// Registers a workflow, starts a run, follows it to the end and prints its steps.
//
// Usage (after `npm run build`):
//   BATON_ADDR=127.0.0.1:8002 node dist/examples/hello.js [workflow.yaml]          # gRPC
//   BATON_URL=http://127.0.0.1:8002 node dist/examples/hello.js [workflow.yaml]    # gRPC-Web
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { RpcTransport } from "@protobuf-ts/runtime-rpc";
import {
  DefinitionFormat,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthClient,
  Run,
  RunEventType,
  RunServiceClient,
  RunStatus,
  StepStatus,
  WorkflowServiceClient,
} from "../src";
import { grpcTransport } from "../src/node";
import { grpcWebTransport } from "../src/web";

export const DEFAULT_WORKFLOW = join(__dirname, "..", "..", "..", "..", "examples", "hello.yaml");
export const INPUTS = { name: "Ada", count: 3 };

const RUN_ENDED = new Set([
  RunEventType.RUN_COMPLETED,
  RunEventType.RUN_FAILED,
  RunEventType.RUN_CANCELLED,
  RunEventType.RUN_TIMED_OUT,
]);

const lower = (name: string | undefined) => (name ?? "unknown").toLowerCase();

/** Runs `definition` with `inputs`, printing progress through `log`; returns the finished run. */
export async function runExample(
  transport: RpcTransport,
  definition: string,
  inputs: object,
  log: (line: string) => void = console.log,
): Promise<Run> {
  const health = await new HealthClient(transport).check({ service: "" }).response;
  log(`health: ${ServingStatus[health.status]}`);
  if (health.status !== ServingStatus.SERVING) {
    throw new Error("Baton is not serving (is its Postgres or Redis down?)");
  }

  const { response: registered } = await new WorkflowServiceClient(transport).registerWorkflow({
    definition,
    format: DefinitionFormat.YAML,
  });
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

  const watch = runs.watchRun({ runId, afterSequence: "0" });
  for await (const { event } of watch.responses) {
    if (!event) continue;
    const where = event.stepId ? ` ${event.stepId}#${event.attempt}` : "";
    const detail = event.message ? ` ${event.message}` : "";
    log(`  [${event.sequence.padStart(3)}] ${lower(RunEventType[event.type])}${where}${detail}`);
    if (RUN_ENDED.has(event.type)) break;
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
  return run;
}

async function main(): Promise<number> {
  const transport = process.env.BATON_URL
    ? grpcWebTransport(process.env.BATON_URL)
    : grpcTransport(process.env.BATON_ADDR ?? "127.0.0.1:8002");
  const definition = readFileSync(process.argv[2] ?? DEFAULT_WORKFLOW, "utf8");
  try {
    const run = await runExample(transport, definition, INPUTS);
    return run.status === RunStatus.COMPLETED ? 0 : 1;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    console.error(`error: ${e.code ? `${e.code}: ` : ""}${e.message ?? String(error)}`);
    return 1;
  } finally {
    if ("close" in transport) (transport as { close(): void }).close();
  }
}

if (require.main === module) {
  main().then((code) => process.exit(code));
}
