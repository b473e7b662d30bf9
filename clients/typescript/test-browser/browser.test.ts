// gRPC-Web from a real browser (Debian's Chromium, driven by playwright-core): a page on one
// origin runs the example against the orchestrator on another, so CORS is exercised for real,
// with the API key in BATON_TOKEN and without one.
//   BATON_ADDR=127.0.0.1:8002 BATON_TOKEN=bk_... BATON_PAGE_ORIGIN=<an origin in GRPC_WEB_ALLOWED_ORIGINS> npm run test:browser
//
// The page server listens on a port of its own choosing and is Chromium's HTTP proxy: every
// page origin, allowed or not, is served by it without binding that origin's port, so no port
// has to be free or handed over. Only the orchestrator's address bypasses the proxy.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import { Browser, chromium } from "playwright-core";
import type { BrowserResult } from "./app";
import { assertWholeRun } from "../test/run-events";

const addr = process.env.BATON_ADDR ?? "127.0.0.1:8002";
const allowedOrigin = process.env.BATON_PAGE_ORIGIN ?? "http://127.0.0.1:5173";
// A reserved name (RFC 6761), so no orchestrator allows it by accident.
const refusedOrigin = "http://refused.baton.test";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const token = process.env.BATON_TOKEN ?? "";
const sources = join(__dirname, "..", "..");
const workflow = join(sources, "..", "..", "examples", "hello.yaml");

let bundle = "";
let browser: Browser;
let server: Server;

/** Serves the page, its script and the workflow on both origins; resolves with its port. */
function servePages(): Promise<number> {
  server = createServer((request, response) => {
    // As a proxy it is asked for absolute URLs; other requests Chromium makes get a 404.
    const url = new URL(request.url ?? "/", "http://unknown.invalid");
    const page = url.origin === allowedOrigin || url.origin === refusedOrigin;
    const [status, type, body] = !page
      ? [404, "text/plain", "not a page of this test\n"]
      : url.pathname === "/app.js"
        ? [200, "text/javascript", bundle]
        : url.pathname === "/hello.yaml"
          ? [200, "text/yaml", readFileSync(workflow, "utf8")]
          : [200, "text/html", '<!doctype html><title>Baton</title><pre id="out"></pre><script src="/app.js"></script>'];
    response.writeHead(status, { "content-type": type });
    response.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

/** Loads the page on `origin`, the app sending `key` (none when undefined), and waits for its result. */
async function runPage(origin: string, key: string | undefined): Promise<{ result: BrowserResult; console: string[] }> {
  const page = await browser.newPage();
  const console: string[] = [];
  page.on("console", (message) => console.push(message.text()));
  // Handed to the page before its script runs, never in its URL.
  await page.addInitScript((value) => {
    if (value) window.batonToken = value;
  }, key);
  try {
    await page.goto(`${origin}/?addr=${encodeURIComponent(`http://${addr}`)}`);
    try {
      await page.waitForFunction(() => window.batonResult !== undefined, null, { timeout: 120_000 });
    } catch (error) {
      const shown = await page.textContent("#out").catch(() => null);
      throw new Error(`${error}\npage: ${shown}\nconsole:\n${console.join("\n")}`);
    }
    const result = (await page.evaluate(() => window.batonResult)) as BrowserResult;
    return { result, console };
  } finally {
    await page.close();
  }
}

describe("gRPC-Web from Chromium", () => {
  before(async () => {
    for (const origin of [allowedOrigin, refusedOrigin]) {
      assert.match(origin, /^http:\/\/[^/]+$/, "page origins are http://host[:port]");
    }
    assert.notEqual(allowedOrigin, refusedOrigin);
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
    const port = await servePages();
    browser = await chromium.launch({
      executablePath,
      args: ["--no-sandbox"],
      // `<-loopback>`: loopback page origins go through the proxy too, all but the orchestrator.
      proxy: { server: `http://127.0.0.1:${port}`, bypass: `<-loopback>,${addr}` },
    });
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  it("runs the example from an allowed origin with the API key", async () => {
    assert.ok(token, "BATON_TOKEN is not set: the test needs an API key");
    const { result, console } = await runPage(allowedOrigin, token);
    assert.equal(result.error, undefined, `${result.error}\n${console.join("\n")}`);
    assert.equal(result.origin, allowedOrigin);
    assert.equal(result.watched, "SERVING");
    assertWholeRun(result.runId!, result.events!);
    assert.equal(result.status, "COMPLETED", result.lines.join("\n"));
    const steps = new Map(result.steps!.map((step) => [step.id, step]));
    assert.deepEqual([...steps.keys()].sort(), ["greet", "join", "left", "right"]);
    for (const step of steps.values()) assert.equal(step.status, "COMPLETED", step.id);
    assert.equal(steps.get("left")!.attempts, 2);
    assert.deepEqual(JSON.parse(steps.get("join")!.output), { total: 3, text: "Hello, Ada!" });
  });

  it("is UNAUTHENTICATED from an allowed origin without a key, and health still answers", async () => {
    const { result, console } = await runPage(allowedOrigin, undefined);
    assert.equal(result.origin, allowedOrigin);
    assert.equal(result.status, undefined);
    assert.equal(result.code, "UNAUTHENTICATED", `${result.error}\n${console.join("\n")}`);
    assert.equal(result.watched, "SERVING", "health needs no key");
    assert.equal(result.lines[0], "health: SERVING", result.lines.join("\n"));
    assert.ok(
      !console.some((line) => line.includes("blocked by CORS policy")),
      `the refusal must reach the page, not be hidden by CORS:\n${console.join("\n")}`,
    );
  });

  it("is refused by the browser from an origin not allowed", async () => {
    const { result, console } = await runPage(refusedOrigin, token);
    assert.equal(result.origin, refusedOrigin);
    assert.equal(result.status, undefined);
    assert.ok(result.error, "the call should fail");
    assert.ok(
      console.some((line) => line.includes(`from origin '${refusedOrigin}' has been blocked by CORS policy`)),
      `Chromium should report the CORS refusal:\n${console.join("\n")}`,
    );
  });
});
