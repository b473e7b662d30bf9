// The browser side of the browser test: the example over gRPC-Web from a page, with the API key
// the test puts on `window.batonToken` (none when it puts none), reporting what happened on
// `window.batonResult` for the test to read.
import { RpcError } from "@protobuf-ts/runtime-rpc";
import {
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthClient,
  RunEvent,
  RunStatus,
  StepStatus,
} from "../src";
import { grpcWebTransport } from "../src/web";
import { INPUTS, runExample } from "../examples/run-example";

export interface BrowserResult {
  /** The page's own origin, the one the orchestrator saw. */
  origin: string;
  watched?: string;
  runId?: string;
  status?: string;
  events?: RunEvent[];
  steps?: { id: string; status: string; attempts: number; output: string }[];
  error?: string;
  /** The gRPC status code of a failed call (`UNAUTHENTICATED`, ...). */
  code?: string;
  lines: string[];
}

declare global {
  interface Window {
    batonToken?: string;
    batonResult?: BrowserResult;
  }
}

async function main(): Promise<BrowserResult> {
  const addr = new URLSearchParams(location.search).get("addr");
  if (!addr) throw new Error("the page needs ?addr=http://host:port");
  const transport = grpcWebTransport(addr, { token: window.batonToken });
  const lines: string[] = [];
  let watched = "no update";
  try {
    const abort = new AbortController();
    const watch = new HealthClient(transport).watch({ service: "" }, { abort: abort.signal });
    for await (const update of watch.responses) {
      watched = ServingStatus[update.status];
      break;
    }
    abort.abort();
    await watch.status.catch(() => undefined);

    const definition = await (await fetch("/hello.yaml")).text();
    const { run, events } = await runExample(transport, definition, INPUTS, (line) => lines.push(line));
    return {
      origin: location.origin,
      watched,
      runId: run.id,
      status: RunStatus[run.status],
      events,
      steps: run.steps.map((step) => ({
        id: step.stepId,
        status: StepStatus[step.status],
        attempts: step.attempts.length,
        output: step.outputJson,
      })),
      lines,
    };
  } catch (error) {
    const code = error instanceof RpcError ? error.code : undefined;
    return { origin: location.origin, watched, error: String(error), code, lines };
  }
}

main().then((result) => {
  window.batonResult = result;
  document.getElementById("out")!.textContent = JSON.stringify(result, null, 2);
});
