// What WatchRun promises about a whole run, checked the same way over every transport.
import assert from "node:assert/strict";
import { RunEvent, RunEventType } from "../src";
import { RUN_ENDED } from "../examples/run-example";

/**
 * Asserts that `events` are all of run `runId`: sequences 1, 2, ... without gaps, from
 * RUN_QUEUED to the run's one terminal event, RUN_COMPLETED, last.
 */
export function assertWholeRun(runId: string, events: RunEvent[]): void {
  assert.ok(events.length > 0, `WatchRun sent no events for run ${runId}`);
  const listed = events.map((e) => `  ${e.sequence} ${RunEventType[e.type]} ${e.stepId}`).join("\n");
  assert.deepEqual(
    events.map((e) => e.runId),
    events.map(() => runId),
    `events of another run:\n${listed}`,
  );
  assert.deepEqual(
    events.map((e) => e.sequence),
    events.map((_, i) => String(i + 1)),
    `sequences out of order or with gaps:\n${listed}`,
  );
  assert.deepEqual(
    events.map((e) => RUN_ENDED.has(e.type)),
    events.map((_, i) => i === events.length - 1),
    `the run's terminal event must come last, once:\n${listed}`,
  );
  assert.equal(events[0].type, RunEventType.RUN_QUEUED, listed);
  assert.equal(events[events.length - 1].type, RunEventType.RUN_COMPLETED, listed);
}
