// Unit tests of the js-notes connector with a fake sync context (no NATS):
// node --test
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { notesConnector, fingerprint } = require("./connector");
const { ulid, StopRequested } = require("./tributary");

// fakeContext records what the connector reports.
function fakeContext({ stopAtCheckpoint = false } = {}) {
  const got = { emitted: [], deleted: [], checkpoints: [], scanned: 0, total: 0, contents: [] };
  const abort = new AbortController();
  const ctx = {
    signal: abort.signal,
    throwIfCancelled() {
      if (abort.signal.aborted) throw abort.signal.reason;
    },
    incrementScanned(n = 1) { got.scanned += n; },
    setTotal(n) { got.total = n; },
    async saveContent(text) {
      got.contents.push(text);
      return `C${got.contents.length}`;
    },
    async emit(doc, { updated = false } = {}) { got.emitted.push({ id: doc.external_id, updated, doc }); },
    async emitDeleted(id) { got.deleted.push(id); },
    async emitError() {},
    async checkpoint(cp) {
      got.checkpoints.push(cp);
      if (stopAtCheckpoint) throw new StopRequested();
    },
  };
  return { ctx, got, abort };
}

const notes = (...ids) => ids.map((id) => ({ id, title: id.toUpperCase(), text: `text of ${id}` }));

test("a full sync emits every note and returns their fingerprints", async () => {
  const { ctx, got } = fakeContext();
  const cp = await notesConnector.sync({ mode: "full", config: { notes: notes("a", "b", "c") }, checkpoint: null }, ctx);
  assert.deepEqual(got.emitted.map((e) => [e.id, e.updated]), [["a", false], ["b", false], ["c", false]]);
  assert.equal(got.scanned, 3);
  assert.equal(got.total, 3);
  assert.deepEqual(Object.keys(cp.notes), ["a", "b", "c"]);
  assert.equal(got.emitted[0].doc.content_id, "C1");
  assert.equal(got.emitted[0].doc.metadata.size, Buffer.byteLength("text of a"));
});

test("an incremental sync emits changes and new notes, and deletes what is gone", async () => {
  const before = notes("a", "b", "c");
  const base = { notes: Object.fromEntries(before.map((n) => [n.id, fingerprint(n)])) };
  const after = [{ ...before[0], text: "edited" }, before[2], ...notes("d")];
  const { ctx, got } = fakeContext();
  await notesConnector.sync({ mode: "incremental", config: { notes: after }, checkpoint: base }, ctx);
  assert.deepEqual(got.emitted.map((e) => [e.id, e.updated]), [["a", true], ["d", false]]);
  assert.deepEqual(got.deleted, ["b"]);
  assert.equal(got.scanned, 3);
});

test("an incremental sync without a checkpoint is a full one", async () => {
  const { ctx, got } = fakeContext();
  await notesConnector.sync({ mode: "incremental", config: { notes: notes("a", "b") }, checkpoint: null }, ctx);
  assert.equal(got.emitted.length, 2);
  assert.deepEqual(got.deleted, []);
});

test("checkpoints during a run, and a resumed attempt goes on after the last one", async () => {
  const all = notes("a", "b", "c", "d", "e");
  const first = fakeContext({ stopAtCheckpoint: true });
  await assert.rejects(
    notesConnector.sync({ mode: "full", config: { notes: all, checkpoint_every: 2 }, checkpoint: null }, first.ctx),
    StopRequested,
  );
  assert.deepEqual(first.got.checkpoints, [{ notes: {}, next: 2 }]);
  const second = fakeContext();
  await notesConnector.sync({
    mode: "full", config: { notes: all, checkpoint_every: 2 }, checkpoint: first.got.checkpoints[0], resumed: true,
  }, second.ctx);
  assert.deepEqual(second.got.emitted.map((e) => e.id), ["c", "d", "e"]);
  // A checkpoint that is not this run's (resumed false) is a base only.
  const third = fakeContext();
  await notesConnector.sync({ mode: "full", config: { notes: all }, checkpoint: { notes: {}, next: 4 }, resumed: false }, third.ctx);
  assert.equal(third.got.emitted.length, 5);
});

test("a cancelled sync stops while it waits between notes", async () => {
  const { ctx, got, abort } = fakeContext();
  const run = notesConnector.sync({ mode: "full", config: { notes: notes("a", "b", "c"), pace_ms: 1000 }, checkpoint: null }, ctx);
  setTimeout(() => abort.abort(new Error("cancelled by request")), 20);
  const began = Date.now();
  await assert.rejects(run);
  assert.ok(Date.now() - began < 900, "cancel interrupts the pace wait");
  assert.equal(got.emitted.length, 0);
});

test("connection test", async () => {
  assert.equal(await notesConnector.testConnection({ notes: notes("a") }), null);
  assert.match(await notesConnector.testConnection({ notes: [] }), /no notes/);
});

test("ulid: 26 upper-case Crockford base32 characters, time first", () => {
  const a = ulid();
  assert.match(a, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  const t = Date.now();
  let n = 0n;
  for (const ch of a.slice(0, 10)) n = n * 32n + BigInt("0123456789ABCDEFGHJKMNPQRSTVWXYZ".indexOf(ch));
  assert.ok(Math.abs(Number(n) - t) < 5000);
  assert.notEqual(ulid(), ulid());
});
