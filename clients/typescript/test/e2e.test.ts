// End to end against a running Baton, over gRPC (BATON_ADDR) and gRPC-Web (BATON_URL, default
// http://<BATON_ADDR>), with an API key in BATON_TOKEN; the Rust test harness starts one per run.
//   BATON_ADDR=127.0.0.1:8002 BATON_TOKEN=bk_... npm test
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { RpcTransport } from "@protobuf-ts/runtime-rpc";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import {
  DefinitionFormat,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthClient,
  InfoServiceClient,
  ListRunsRequest,
  RegisterWorkflowRequest,
  RunEvent,
  RunServiceClient,
  RunStatus,
  StepStatus,
  WorkflowServiceClient,
} from "../src";
import { grpcTransport } from "../src/node";
import { grpcWebTransport } from "../src/web";
import { DEFAULT_WORKFLOW } from "../examples/hello";
import { INPUTS, runExample } from "../examples/run-example";
import { assertWholeRun } from "./run-events";

const addr = process.env.BATON_ADDR ?? "127.0.0.1:8002";
const url = process.env.BATON_URL ?? `http://${addr}`;
const token = process.env.BATON_TOKEN ?? "";
const unknownKey = `bk_0000000000000000_${"0".repeat(64)}`;

/** Each transport, connecting with `key` (the API key in BATON_TOKEN unless given; "" for none). */
const transports: [string, (key?: string) => RpcTransport][] = [
  ["gRPC", (key = token) => grpcTransport(addr, { token: key })],
  ["gRPC-Web", (key = token) => grpcWebTransport(url, { token: key })],
];

describe("the environment", () => {
  it("holds an API key in BATON_TOKEN", () => {
    assert.ok(token, "BATON_TOKEN is not set: these tests need an API key");
  });
});

async function rejection(call: Promise<unknown>): Promise<RpcError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

for (const [name, connect] of transports) {
  describe(`over ${name}`, () => {
    it("answers health Check and Watch", async () => {
      const health = new HealthClient(connect());
      for (const service of ["", "baton.v1.WorkflowService", "baton.v1.RunService", "baton.v1.InfoService"]) {
        const { response } = await health.check({ service });
        assert.equal(response.status, ServingStatus.SERVING, `Check(${JSON.stringify(service)})`);
      }
      const unknown = await rejection(health.check({ service: "baton.v1.Nope" }).response);
      assert.equal(unknown.code, "NOT_FOUND");

      const abort = new AbortController();
      const watch = health.watch({ service: "" }, { abort: abort.signal });
      let first: ServingStatus | undefined;
      for await (const update of watch.responses) {
        first = update.status;
        break;
      }
      abort.abort();
      assert.equal(first, ServingStatus.SERVING, "Watch's first update");
      await watch.status.catch(() => undefined);
    });

    it("runs the hello example to completion", async () => {
      const lines: string[] = [];
      const definition = readFileSync(DEFAULT_WORKFLOW, "utf8");
      const transport = connect();
      const { run, events } = await runExample(transport, definition, INPUTS, (line) => lines.push(line));
      const printed = lines.join("\n");
      assertWholeRun(run.id, events);
      assert.equal(run.status, RunStatus.COMPLETED, printed);
      const steps = new Map(run.steps.map((step) => [step.stepId, step]));
      assert.deepEqual([...steps.keys()].sort(), ["greet", "join", "left", "right"]);
      for (const step of steps.values()) {
        assert.equal(step.status, StepStatus.COMPLETED, `${step.stepId}\n${printed}`);
      }
      // `left` fails once by design, then its retry succeeds.
      assert.deepEqual(
        steps.get("left")!.attempts.map((attempt) => attempt.status),
        [StepStatus.FAILED, StepStatus.COMPLETED],
      );
      assert.deepEqual(JSON.parse(steps.get("join")!.outputJson), { total: 3, text: "Hello, Ada!" });
      assert.match(printed, /step_retrying left#1/);
      assert.match(printed, new RegExp(`run ${run.id}: completed`));
      assert.match(printed, /^ {2}join +completed +attempts=1/m);

      // Watching the finished run replays the same events, then the stream ends by itself.
      const replay = new RunServiceClient(transport).watchRun(
        { runId: run.id, afterSequence: "0" },
        { abort: AbortSignal.timeout(30_000) },
      );
      const replayed: RunEvent[] = [];
      try {
        for await (const { event } of replay.responses) replayed.push(event!);
        assert.equal((await replay.status).code, "OK");
      } catch (error) {
        assert.fail(`the replay of run ${run.id} did not end within 30 s, after ${replayed.length} events: ${error}`);
      }
      assertWholeRun(run.id, replayed);
      assert.deepEqual(
        replayed.map((e) => [e.type, e.stepId, e.attempt]),
        events.map((e) => [e.type, e.stepId, e.attempt]),
      );
    });

    for (const [what, key] of [
      ["no token", ""],
      ["an unknown key", unknownKey],
    ]) {
      it(`refuses a call with ${what} as UNAUTHENTICATED, but not health`, async () => {
        const transport = connect(key);
        // Health needs no credential, so probes work without a secret.
        const { response } = await new HealthClient(transport).check({ service: "" });
        assert.equal(response.status, ServingStatus.SERVING);
        const refused = await rejection(new InfoServiceClient(transport).getInfo({}).response);
        assert.equal(refused.code, "UNAUTHENTICATED");
        const listed = await rejection(
          new RunServiceClient(transport).listRuns(ListRunsRequest.create()).response,
        );
        assert.equal(listed.code, "UNAUTHENTICATED");
      });
    }

    it("gives clear errors for bad requests", async () => {
      const transport = connect();
      const missing = await rejection(
        new RunServiceClient(transport).startRun({
          workflowRef: "nobody/missing@1",
          inputsJson: "",
          idempotencyKey: "",
          tenant: "",
        }).response,
      );
      assert.equal(missing.code, "NOT_FOUND");
      assert.match(decodeURIComponent(missing.message), /nobody\/missing@1/);

      const invalid = await rejection(
        new WorkflowServiceClient(transport).registerWorkflow(
          RegisterWorkflowRequest.create({
            definition: "owner: t\nname: broken\nversion: 1\nsteps:\n  - id: a\n    kind: echo\n    needs: [ghost]\n",
            format: DefinitionFormat.YAML,
          }),
        ).response,
      );
      assert.equal(invalid.code, "INVALID_ARGUMENT");
      assert.match(decodeURIComponent(invalid.message), /ghost/);
    });
  });
}
