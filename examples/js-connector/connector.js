#!/usr/bin/env node
// js-notes: a Tributary connector written in JavaScript. It syncs the notes
// listed in its source config, full or incremental, with checkpoints, and
// honours cancellation. The protocol side (NATS subjects, streams, leases,
// events) is tributary.js; this file is the connector and the command line.
//
//   npm ci
//   node connector.js --nats-url nats://127.0.0.1:4222
//
// Source config: {"notes":[{"id":"a","title":"A","text":"…","author":"…"}],
//                 "pace_ms":0, "checkpoint_every":100}
// pace_ms waits that long before each note (a slow source, for tests).
"use strict";

const crypto = require("node:crypto");
const { setTimeout: sleep } = require("node:timers/promises");
const { parseArgs } = require("node:util");
const { Worker } = require("./tributary");

const manifest = {
  name: "js-notes",
  version: "1.0.0",
  description: "Notes listed in the source config, synced by a worker written in JavaScript",
  sync_modes: ["full", "incremental"],
  connection_test: true,
  config_schema: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    additionalProperties: false,
    required: ["notes"],
    properties: {
      notes: {
        type: "array",
        items: {
          type: "object",
          additionalProperties: false,
          required: ["id", "text"],
          properties: {
            id: { type: "string", minLength: 1, maxLength: 1024 },
            title: { type: "string" },
            text: { type: "string" },
            author: { type: "string" },
          },
        },
      },
      pace_ms: { type: "integer", minimum: 0, maximum: 60000 },
      checkpoint_every: { type: "integer", minimum: 1 },
    },
  },
};

// fingerprint identifies a version of a note, for incremental syncs.
function fingerprint(n) {
  return crypto.createHash("sha256").update(JSON.stringify([n.title || "", n.text, n.author || ""])).digest("hex").slice(0, 16);
}

// The checkpoint: {"notes": {id: fingerprint}} of the last completed run,
// and while a run is under way {"notes": …the base…, "next": i}, the index
// of the first note not yet emitted.
const notesConnector = {
  manifest,

  async sync(req, ctx) {
    const notes = req.config.notes || [];
    const pace = req.config.pace_ms || 0;
    const every = req.config.checkpoint_every || 100;
    const cp = req.checkpoint && typeof req.checkpoint === "object" ? req.checkpoint : null;
    const base = (cp && cp.notes) || {};
    // A resumed attempt goes on after the notes its run already emitted.
    const start = req.resumed && cp && Number.isInteger(cp.next) ? cp.next : 0;
    // Incremental: only what changed since the base; without a base, all.
    const incremental = req.mode === "incremental" && cp !== null;
    ctx.setTotal(notes.length);

    for (let i = start; i < notes.length; i++) {
      ctx.throwIfCancelled();
      if (pace > 0) await sleep(pace, undefined, { signal: ctx.signal });
      const n = notes[i];
      ctx.incrementScanned(1);
      const fp = fingerprint(n);
      if (!incremental || base[n.id] !== fp) {
        const contentId = await ctx.saveContent(n.text, "text/plain; charset=utf-8");
        const metadata = { title: n.title || n.id, mime_type: "text/plain; charset=utf-8", size: Buffer.byteLength(n.text) };
        if (n.author) metadata.author = n.author;
        await ctx.emit({
          external_id: n.id,
          title: n.title || n.id,
          content_id: contentId,
          metadata,
          permissions: { public: true },
          attributes: { connector: "js-notes" },
        }, { updated: incremental && base[n.id] !== undefined });
      }
      if ((i + 1) % every === 0 && i + 1 < notes.length) {
        await ctx.checkpoint({ notes: base, next: i + 1 });
      }
    }
    const seen = {};
    for (const n of notes) seen[n.id] = fingerprint(n);
    if (incremental) {
      // Notes gone since the base are deletions. (A full sync needs none:
      // the manager deletes what a completed full sync did not see.)
      for (const id of Object.keys(base)) {
        if (!(id in seen)) await ctx.emitDeleted(id);
      }
    }
    return { notes: seen };
  },

  // testConnection answers a connection test: null when it passes, else
  // why not.
  async testConnection(config) {
    return Array.isArray(config.notes) && config.notes.length > 0 ? null : "the source lists no notes";
  },
};

// duration parses "3s", "500ms", "1m" or plain milliseconds.
function duration(s) {
  if (s === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw new Error(`invalid duration ${s}`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60000 }[m[2] || "ms"]);
}

async function main() {
  const { values } = parseArgs({
    options: {
      "nats-url": { type: "string", default: process.env.NATS_URL || "nats://127.0.0.1:4222" },
      "heartbeat-timeout": { type: "string" },
      concurrency: { type: "string", default: "2" },
      "worker-id": { type: "string" },
      "shutdown-grace": { type: "string", default: "10s" },
    },
  });
  const worker = new Worker(notesConnector, {
    natsUrl: values["nats-url"],
    user: process.env.NATS_USER,
    pass: process.env.NATS_PASSWORD,
    heartbeatTimeoutMs: duration(values["heartbeat-timeout"]),
    concurrency: Number(values.concurrency),
    workerId: values["worker-id"],
    shutdownGraceMs: duration(values["shutdown-grace"]),
  });
  let stopping;
  const stop = () => {
    stopping = stopping || worker.stop().then(() => process.exit(0), (err) => {
      process.stderr.write(`stop: ${err.stack || err}\n`);
      process.exit(1);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await worker.start();
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(JSON.stringify({ level: "error", ts: new Date().toISOString(), msg: "js worker failed", error: err.stack || String(err) }) + "\n");
    process.exit(1);
  });
}

module.exports = { notesConnector, fingerprint };
