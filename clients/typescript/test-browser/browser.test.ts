// gRPC-Web from a real browser (Debian's Chromium, driven by playwright-core): a page on one
// origin runs the example against the orchestrator on another, so CORS is exercised for real.
//   BATON_ADDR=127.0.0.1:8002 BATON_PAGE_PORT=<a port in GRPC_WEB_ALLOWED_ORIGINS> npm run test:browser
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import { Browser, chromium } from "playwright-core";
import type { BrowserResult } from "./app";

const addr = process.env.BATON_ADDR ?? "127.0.0.1:8002";
const allowedPort = Number(process.env.BATON_PAGE_PORT ?? "5173");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const sources = join(__dirname, "..", "..");
const workflow = join(sources, "..", "..", "examples", "hello.yaml");

let bundle = "";
let browser: Browser;
const servers: Server[] = [];

/** Serves the page, its script and the workflow; resolves with the port it listens on. */
function servePage(port: number): Promise<number> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://page").pathname;
    const [type, body] =
      path === "/app.js"
        ? ["text/javascript", bundle]
        : path === "/hello.yaml"
          ? ["text/yaml", readFileSync(workflow, "utf8")]
          : ["text/html", '<!doctype html><title>Baton</title><pre id="out"></pre><script src="/app.js"></script>'];
    response.writeHead(200, { "content-type": type });
    response.end(body);
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

async function runPage(port: number): Promise<{ result: BrowserResult; console: string[] }> {
  const page = await browser.newPage();
  const console: string[] = [];
  page.on("console", (message) => console.push(message.text()));
  try {
    await page.goto(`http://127.0.0.1:${port}/?addr=${encodeURIComponent(`http://${addr}`)}`);
    await page.waitForFunction(() => window.batonResult !== undefined, null, { timeout: 60_000 });
    const result = (await page.evaluate(() => window.batonResult)) as BrowserResult;
    return { result, console };
  } finally {
    await page.close();
  }
}

describe("gRPC-Web from Chromium", () => {
  before(async () => {
    const built = await build({
      entryPoints: [join(sources, "test-browser", "app.ts")],
      bundle: true,
      format: "iife",
      platform: "browser",
      target: "es2020",
      write: false,
      logLevel: "warning",
    });
    bundle = built.outputFiles[0].text;
    browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  });

  after(async () => {
    await browser?.close();
    for (const server of servers) server.close();
  });

  it("runs the example from an allowed origin", async () => {
    const port = await servePage(allowedPort);
    const { result, console } = await runPage(port);
    assert.equal(result.error, undefined, `${result.error}\n${console.join("\n")}`);
    assert.equal(result.watched, "SERVING");
    assert.equal(result.status, "COMPLETED", result.lines.join("\n"));
    const steps = new Map(result.steps!.map((step) => [step.id, step]));
    assert.deepEqual([...steps.keys()].sort(), ["greet", "join", "left", "right"]);
    assert.ok([...steps.values()].every((step) => step.status === "COMPLETED"));
    assert.equal(steps.get("left")!.attempts, 2);
    assert.deepEqual(JSON.parse(steps.get("join")!.output), { total: 3, text: "Hello, Ada!" });
  });

  it("is refused by the browser from an origin not allowed", async () => {
    const port = await servePage(0);
    const { result, console } = await runPage(port);
    assert.equal(result.status, undefined);
    assert.ok(result.error, "the call should fail");
    assert.ok(
      console.some((line) => /CORS policy/.test(line)),
      `Chromium should report the CORS refusal:\n${console.join("\n")}`,
    );
  });
});
