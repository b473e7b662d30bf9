// Registers a workflow, starts a run, follows it to the end and prints its steps.
//
// Usage (after `npm run build`), with an API key in BATON_TOKEN (`export BATON_TOKEN=$(baton auth token)`):
//   BATON_ADDR=127.0.0.1:8002 node dist/examples/hello.js [workflow.yaml]          # gRPC
//   BATON_URL=http://127.0.0.1:8002 node dist/examples/hello.js [workflow.yaml]    # gRPC-Web
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RunStatus } from "../src";
import { grpcTransport } from "../src/node";
import { grpcWebTransport } from "../src/web";
import { INPUTS, runExample } from "./run-example";

export const DEFAULT_WORKFLOW = join(__dirname, "..", "..", "..", "..", "examples", "hello.yaml");

async function main(): Promise<number> {
  const token = process.env.BATON_TOKEN;
  const transport = process.env.BATON_URL
    ? grpcWebTransport(process.env.BATON_URL, { token })
    : grpcTransport(process.env.BATON_ADDR ?? "127.0.0.1:8002", { token });
  const definition = readFileSync(process.argv[2] ?? DEFAULT_WORKFLOW, "utf8");
  try {
    const { run } = await runExample(transport, definition, INPUTS);
    return run.status === RunStatus.COMPLETED ? 0 : 1;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    console.error(`error: ${e.code ? `${e.code}: ` : ""}${e.message ?? String(error)}`);
    if (e.code === "UNAUTHENTICATED") {
      console.error("hint: set BATON_TOKEN to an API key: export BATON_TOKEN=$(baton auth token)");
    }
    return 1;
  } finally {
    if ("close" in transport) (transport as { close(): void }).close();
  }
}

if (require.main === module) {
  main().then((code) => process.exit(code));
}
