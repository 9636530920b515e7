// The official @trigger.dev/sdk 4.8.3 against a trigger-local daemon, configured only by
// TRIGGER_API_URL and TRIGGER_SECRET_KEY. Run by tests/e2e/test_node_sdk.py, which installs the
// SDK next to a copy of this file. Every step asserts on values; the first failure exits 1.
import assert from "node:assert/strict";
import { auth, batch, queues, runs, streams, tasks, wait } from "@trigger.dev/sdk";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const status = (id, wanted) =>
  until(`${id} to be ${wanted}`, async () => {
    const run = await runs.retrieve(id);
    return run.status === wanted ? run : null;
  });

const steps = [];
async function step(name, fn) {
  const started = Date.now();
  await fn();
  steps.push({ name, ms: Date.now() - started });
  console.log(`ok ${name} (${Date.now() - started} ms)`);
}

let firstRunId;

await step("trigger a Python task, poll it to COMPLETED, read its output", async () => {
  const handle = await tasks.trigger("hello", { name: "node" }, { tags: ["node-sdk"] });
  assert.match(handle.id, /^run_/);
  assert.equal(typeof handle.publicAccessToken, "string");
  const run = await status(handle.id, "COMPLETED");
  assert.deepEqual(run.output, { message: "Hello, node!" });
  assert.deepEqual(run.payload, { name: "node" });
  assert.equal(run.isSuccess, true);
  assert.equal(run.taskIdentifier, "hello");
  firstRunId = handle.id;
});

await step("the same idempotency key twice gives the same run", async () => {
  const a = await tasks.trigger("hello", { name: "once" }, { idempotencyKey: "node-once" });
  const b = await tasks.trigger("hello", { name: "twice" }, { idempotencyKey: "node-once" });
  assert.equal(b.id, a.id);
  const run = await runs.retrieve(a.id);
  assert.equal(run.idempotencyKey, "node-once");
});

let batchId;
await step("batch-trigger 50 runs and retrieve them with batch.retrieve", async () => {
  const items = Array.from({ length: 50 }, (_, i) => ({ payload: { name: `b${i}` }, options: { tags: ["node-batch"] } }));
  const handle = await tasks.batchTrigger("hello", items);
  assert.match(handle.batchId, /^batch_/);
  assert.equal(handle.runCount, 50);
  batchId = handle.batchId;
  const got = await batch.retrieve(batchId);
  assert.equal(got.id, batchId);
  assert.equal(got.runCount, 50);
  assert.equal(got.runs.length, 50);
  assert.equal(new Set(got.runs).size, 50);
  await until("50 batch runs to complete", async () => {
    const page = await runs.list({ batch: batchId, status: ["COMPLETED"], limit: 100 });
    return page.data.length === 50;
  });
});

await step("list runs with filters across pages", async () => {
  const seen = [];
  for await (const run of runs.list({ tag: "node-batch", taskIdentifier: "hello", status: ["COMPLETED"], limit: 7 })) {
    assert.equal(run.taskIdentifier, "hello");
    assert.ok(run.tags.includes("node-batch"));
    seen.push(run.id);
  }
  assert.equal(seen.length, 50);
  assert.equal(new Set(seen).size, 50);
  const first = await runs.list({ tag: "node-batch", limit: 7 });
  assert.equal(first.data.length, 7);
  assert.equal(first.hasNextPage(), true);
  const second = await first.getNextPage();
  assert.equal(second.data.length, 7);
  assert.ok(!second.data.some((r) => first.data.find((f) => f.id === r.id)));
  const none = await runs.list({ tag: "no-such-tag" });
  assert.equal(none.data.length, 0);
});

await step("cancel a delayed run", async () => {
  const handle = await tasks.trigger("hello", { name: "late" }, { delay: "1h" });
  const delayed = await runs.retrieve(handle.id);
  assert.equal(delayed.status, "DELAYED");
  assert.ok(delayed.delayedUntil instanceof Date);
  const canceled = await runs.cancel(handle.id);
  assert.equal(canceled.id, handle.id);
  const run = await runs.retrieve(handle.id);
  assert.equal(run.status, "CANCELED");
  assert.equal(run.isCancelled, true);
});

await step("replay a run", async () => {
  const replayed = await runs.replay(firstRunId);
  assert.notEqual(replayed.id, firstRunId);
  const run = await status(replayed.id, "COMPLETED");
  assert.deepEqual(run.output, { message: "Hello, node!" });
});

await step("reschedule a delayed run", async () => {
  const handle = await tasks.trigger("hello", { name: "moved" }, { delay: "1h" });
  const before = (await runs.retrieve(handle.id)).delayedUntil;
  const moved = await runs.reschedule(handle.id, { delay: "3h" });
  assert.equal(moved.id, handle.id);
  assert.equal(moved.status, "DELAYED");
  const gap = moved.delayedUntil.getTime() - before.getTime();
  assert.ok(gap > 1.9 * 3600e3 && gap < 2.1 * 3600e3, `moved by ${gap} ms`);
  await runs.cancel(handle.id);
});

async function tokenRoundTrip(complete, data) {
  const token = await wait.createToken({ timeout: "10m", tags: ["node-token"] });
  assert.match(token.id, /^waitpoint_/);
  assert.match(token.url, /\/callback\//);
  const handle = await tasks.trigger("await-token", { token: token.id });
  await status(handle.id, "WAITING");
  const waiting = await wait.retrieveToken(token.id);
  assert.equal(waiting.status, "WAITING");
  await complete(token);
  const run = await status(handle.id, "COMPLETED");
  assert.deepEqual(run.output, { ok: true, output: data });
  const done = await wait.retrieveToken(token.id);
  assert.equal(done.status, "COMPLETED");
  assert.deepEqual(done.output, data);
}

await step("complete a token a Python run waits on with wait.completeToken", async () => {
  const data = { approved: true, by: "node" };
  await tokenRoundTrip(async (token) => {
    const result = await wait.completeToken(token, data);
    assert.deepEqual(result, { success: true });
  }, data);
});

await step("complete a token by fetch POST to token.url", async () => {
  const data = { approved: false, reason: "callback" };
  await tokenRoundTrip(async (token) => {
    const response = await fetch(token.url, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { success: true });
  }, data);
});

await step("list tokens with filters", async () => {
  const page = await wait.listTokens({ tags: ["node-token"], status: ["COMPLETED"] });
  assert.equal(page.data.length, 2);
});

await step("pause a queue: nothing starts; resume: it runs", async () => {
  const paused = await queues.pause({ type: "task", name: "hello" });
  assert.equal(paused.paused, true);
  assert.equal(paused.name, "hello");
  const handle = await tasks.trigger("hello", { name: "paused" });
  // a bounded look: across 1.5 s of polling the run must stay QUEUED
  const deadline = Date.now() + 1500;
  while (Date.now() < deadline) {
    assert.equal((await runs.retrieve(handle.id)).status, "QUEUED");
    await sleep(100);
  }
  const queue = await queues.retrieve({ type: "task", name: "hello" });
  assert.equal(queue.paused, true);
  assert.ok(queue.queued >= 1);
  const resumed = await queues.resume({ type: "task", name: "hello" });
  assert.equal(resumed.paused, false);
  const run = await status(handle.id, "COMPLETED");
  assert.deepEqual(run.output, { message: "Hello, paused!" });
});

await step("a 200 KB payload goes through /api/v2/packets and reaches the task", async () => {
  const name = "y".repeat(200000);
  const handle = await tasks.trigger("hello", { name });
  const run = await status(handle.id, "COMPLETED");
  assert.equal(run.output.message, `Hello, ${name}!`);
  assert.deepEqual(run.payload, { name });  // fetched by the SDK from payloadPresignedUrl
});

await step("list queues", async () => {
  const page = await queues.list({ perPage: 100 });
  const names = page.data.map((q) => `${q.type}:${q.name}`);
  assert.ok(names.includes("task:hello"), names.join(","));
  assert.ok(names.includes("task:await-token"), names.join(","));
  const hello = page.data.find((q) => q.name === "hello");
  assert.equal(hello.paused, false);
  assert.match(hello.id, /^queue_/);
});

// -- realtime (docs/realtime.md): the Electric shape routes and v1 streams ------------------

await step("subscribeToRun follows a triggered run until it completes", async () => {
  const token = await wait.createToken({ timeout: "5m" });
  const handle = await tasks.trigger("await-token", { token: token.id });
  const statuses = [];
  for await (const run of runs.subscribeToRun(handle.id)) {
    statuses.push(run.status);
    if (run.status === "WAITING" && statuses.filter((s) => s === "WAITING").length === 1) {
      await wait.completeToken(token.id, { from: "node" });
    }
    if (run.status === "COMPLETED") {
      assert.deepEqual(run.output, { ok: true, output: { from: "node" } });
      assert.ok(run.finishedAt instanceof Date);
      assert.equal(run.isSuccess, true);
    }
  }
  assert.equal(statuses.at(-1), "COMPLETED", statuses.join(","));
  assert.ok(statuses.includes("WAITING"), statuses.join(","));
});

await step("a public token scoped to one run subscribes to it", async () => {
  const handle = await tasks.trigger("hello", { name: "public" });
  await status(handle.id, "COMPLETED");
  const publicToken = await auth.createPublicToken({ scopes: { read: { runs: [handle.id] } } });
  const rows = await auth.withAuth({ accessToken: publicToken }, async () => {
    const seen = [];
    for await (const run of runs.subscribeToRun(handle.id)) seen.push(run);
    return seen;
  });
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0].output, { message: "Hello, public!" });
  const viaTrigger = await auth.withAuth({ accessToken: handle.publicAccessToken }, async () => {
    for await (const run of runs.subscribeToRun(handle.id)) return run;
  });
  assert.equal(viaTrigger.status, "COMPLETED");
});

await step("subscribeToRunsWithTag and subscribeToBatch see their runs complete", async () => {
  const a = await tasks.trigger("hello", { name: "t1" }, { tags: ["rt-node"] });
  const b = await tasks.trigger("hello", { name: "t2" }, { tags: ["rt-node", "other"] });
  const done = new Map();
  for await (const run of runs.subscribeToRunsWithTag("rt-node")) {
    assert.ok(run.tags.includes("rt-node"));
    if (run.status === "COMPLETED") done.set(run.id, run.output.message);
    if (done.size === 2) break;
  }
  assert.deepEqual([...done.keys()].sort(), [a.id, b.id].sort());
  const handle = await tasks.batchTrigger("hello", [{ payload: { name: "x" } }, { payload: { name: "y" } }]);
  const finished = new Set();
  for await (const run of runs.subscribeToBatch(handle.batchId)) {
    if (run.status === "COMPLETED") finished.add(run.id);
    if (finished.size === 2) break;
  }
  assert.equal(finished.size, 2);
});

await step("streams.read and withStreams read a Python task's stream", async () => {
  const handle = await tasks.trigger("streamer", { n: 20 });
  const chunks = [];
  for await (const chunk of await streams.read(handle.id, "tokens")) chunks.push(chunk);
  assert.deepEqual(chunks, Array.from({ length: 20 }, (_, i) => ({ token: `t${i}` })));
  const parts = [];
  let finished = false;
  for await (const part of runs.subscribeToRun(handle.id).withStreams()) {
    if (part.type === "run") finished = Boolean(part.run.finishedAt);
    else parts.push(part);
    if (finished && parts.length === 20) break;  // withStreams never ends by itself
  }
  assert.equal(parts[0].type, "tokens");
  assert.deepEqual(parts.map((p) => p.chunk), chunks);
});

console.log(JSON.stringify({ ok: true, steps }));
