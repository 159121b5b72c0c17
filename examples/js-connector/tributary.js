// A Tributary worker runtime in JavaScript, written from docs/protocol.md
// (protocol version 1) with the official NATS client (npm "nats", v2).
//
// It does what §5 "Being a worker" asks of a worker: bind to what the
// manager created, register the manifest, heartbeat the worker record, listen
// for cancels, pull sync requests from the sync-<connector> work-queue
// consumer, hold the source lease, publish the run's events (Nats-Msg-Id =
// event id, republished byte-identical on failure), checkpoint, end the run
// with one terminal event, and hand running syncs back on shutdown.
//
// The connector itself is an object with a `manifest` and
// `async sync(req, ctx)`; see connector.js.
"use strict";

const crypto = require("node:crypto");
const os = require("node:os");
const { connect, headers, AckPolicy, DeliverPolicy, JSONCodec, nanos } = require("nats");

// Names from docs/protocol.md §2.
const STREAM_SYNC = "TRIBUTARY_SYNC";
const STREAM_CANCEL = "TRIBUTARY_CANCEL";
const STREAM_EVENTS = "TRIBUTARY_EVENTS";
const OBJECT_STORE = "tributary_content";
const BUCKETS = ["runs", "checkpoints", "leases", "connectors", "workers", "content_index"];
const MAX_EVENT_SIZE = 1048576;
const MAX_PENDING_EVENTS = 1024;
const MAX_ATTEMPTS = 5;
const RETRY_BACKOFF_MS = 2000;
const PROGRESS_INTERVAL_MS = 1000;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

const jc = JSONCodec();
const B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// ulid returns a new ULID in upper case: 48-bit milliseconds, 80 random bits,
// Crockford base32 (§3: ids are upper-case ULIDs).
function ulid() {
  let n = (BigInt(Date.now()) << 80n) | BigInt("0x" + crypto.randomBytes(10).toString("hex"));
  let s = "";
  for (let i = 0; i < 26; i++) {
    s = B32[Number(n & 31n)] + s;
    n >>= 5n;
  }
  return s;
}

const now = () => new Date().toISOString();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

// StopRequested is thrown by ctx.checkpoint() after the checkpoint was
// stored, when the worker is shutting down: the connector must return (let
// it propagate), and the run is handed to another worker, which resumes from
// that checkpoint.
class StopRequested extends Error {
  constructor() {
    super("stop requested: the sync is handed back at its checkpoint");
    this.name = "StopRequested";
  }
}

// Cancelled is what ctx.throwIfCancelled() throws once the run is cancelled.
class Cancelled extends Error {
  constructor(reason) {
    super(reason || "cancelled");
    this.name = "Cancelled";
  }
}

// BusError marks a NATS failure (not the connector's): the request is handed
// back for another attempt rather than the run failed, as the Go worker does.
class BusError extends Error {
  constructor(what, cause) {
    super(`${what}: ${cause && cause.message ? cause.message : cause}`);
    this.name = "BusError";
    this.cause = cause;
  }
}

// isNotFound is true for a JetStream "no message found" answer (a stream's
// last message for a subject that has none).
function isNotFound(err) {
  return !!err && (err.code === "404" || (err.api_error && err.api_error.err_code === 10037));
}

// isWrongRevision is true when a KV compare-and-set or create failed because
// the key is at another revision (or exists).
function isWrongRevision(err) {
  return !!err && err.api_error && err.api_error.err_code === 10071;
}

// log writes one JSON line to stderr, the shape the Go daemons log in.
function makeLogger(base) {
  const write = (level, msg, fields) => {
    process.stderr.write(JSON.stringify({ level, ts: now(), msg, ...base, ...fields }) + "\n");
  };
  return {
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    with: (f) => makeLogger({ ...base, ...f }),
  };
}

// Publisher publishes the events of one attempt (§3, §4): seq from 1, each
// message published with Nats-Msg-Id = its envelope id, a failed publish
// retried with the very same bytes, at most MAX_PENDING_EVENTS unacked.
class Publisher {
  constructor(js, sourceId, runId, attempt) {
    Object.assign(this, { js, sourceId, runId, attempt });
    this.seq = 0;
    this.pending = []; // promises of unacked publishes, oldest first
    this.failure = null;
  }

  build(type, data) {
    this.seq++;
    const env = {
      id: ulid(), type, source_id: this.sourceId, run_id: this.runId,
      attempt: this.attempt, seq: this.seq, time: now(), data,
    };
    const body = Buffer.from(JSON.stringify(env));
    if (body.length > MAX_EVENT_SIZE) {
      throw new Error(`${type} event is ${body.length} bytes, over the ${MAX_EVENT_SIZE}-byte limit`);
    }
    return { subject: `tributary.events.${this.sourceId}.${this.runId}.${type}`, body, id: env.id };
  }

  // send publishes one built message, up to 5 tries with 5 s timeouts and a
  // pause of 200 ms × try; each try sends the same subject, bytes and id.
  async send(m) {
    for (let i = 1; ; i++) {
      try {
        return await this.js.publish(m.subject, m.body, {
          msgID: m.id, timeout: 5000, expect: { streamName: STREAM_EVENTS },
        });
      } catch (err) {
        if (i === 5) throw new BusError(`publish ${m.subject}`, err);
        await sleep(200 * i);
      }
    }
  }

  // async publishes without waiting for the PubAck (documents, progress).
  async async(type, data) {
    if (this.failure) throw this.failure;
    if (this.pending.length >= MAX_PENDING_EVENTS) {
      // Wait for the older half before adding more.
      await Promise.allSettled(this.pending.slice(0, MAX_PENDING_EVENTS / 2));
      this.pending = this.pending.slice(MAX_PENDING_EVENTS / 2);
      if (this.failure) throw this.failure;
    }
    const p = this.send(this.build(type, data)).catch((err) => {
      this.failure = this.failure || err;
    });
    this.pending.push(p);
  }

  // barrier returns once every earlier event is stored, or throws the first
  // publish that failed for good.
  async barrier() {
    const pending = this.pending;
    this.pending = [];
    await Promise.all(pending);
    if (this.failure) throw this.failure;
  }

  // sync publishes after every earlier event is stored, and waits for its
  // own PubAck (checkpoint, run.started, terminal events).
  async sync(type, data) {
    await this.barrier();
    await this.send(this.build(type, data));
  }
}

// Worker hosts one connector.
class Worker {
  constructor(connector, opts) {
    this.connector = connector;
    this.name = connector.manifest.name;
    if (!TOKEN.test(this.name)) throw new Error(`connector name ${this.name} is not a token`);
    this.opts = {
      natsUrl: "nats://127.0.0.1:4222",
      concurrency: 2,
      shutdownGraceMs: 10000,
      bindTimeoutMs: 30000,
      ...opts,
    };
    this.id = this.opts.workerId || `${os.hostname().replace(/[^A-Za-z0-9_-]/g, "-")}-${ulid()}`;
    if (!TOKEN.test(this.id)) throw new Error(`worker id ${this.id} is not a token`);
    this.log = makeLogger({ worker_id: this.id, connector: this.name });
    this.active = new Map(); // run_id -> active run
    this.stopping = false;
    this.startedAt = now();
  }

  // start connects and binds (§5 steps 1-5) and starts pulling.
  async start() {
    const { natsUrl, user, pass } = this.opts;
    this.nc = await connect({ servers: natsUrl, user, pass, name: `tributary-js-worker ${this.id}`, maxReconnectAttempts: -1 });
    // checkAPI false: no $JS.API.INFO request (account info), which a
    // least-privilege worker user may not send (deploy/nats/accounts.conf).
    this.js = this.nc.jetstream({ checkAPI: false });
    this.jsm = await this.nc.jetstreamManager({ checkAPI: false });
    await this.bind();

    // Step 2: the manifest; last writer wins.
    await this.kv.connectors.put(this.name, jc.encode({
      manifest: this.connector.manifest, registered_at: now(), worker_id: this.id,
    }));
    // Step 3: the worker record, now and every H/3.
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => {
      this.heartbeat().catch((err) => this.log.warn("heartbeat", { error: err.message }));
    }, this.H / 3);
    // Step 4: cancels as they are published.
    this.cancelSub = this.nc.subscribe("tributary.cancel.*", {
      callback: (err, msg) => {
        if (err) return;
        const run = this.active.get(msg.subject.split(".").pop());
        if (run) run.cancel("cancelled by request");
      },
    });
    if (this.connector.manifest.connection_test) this.serveConnectionTests();
    // Step 5: create or update the shared durable consumer, then pull.
    const ci = await this.jsm.consumers.add(STREAM_SYNC, {
      durable_name: `sync-${this.name}`,
      description: `Workers hosting connector ${this.name}`,
      filter_subject: `tributary.sync.${this.name}`,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(this.H),
      max_deliver: -1,
      max_ack_pending: 10000,
      deliver_policy: DeliverPolicy.All,
    });
    this.consumer = this.js.consumers.getPullConsumerFor(ci);
    this.pulling = this.pullLoop();
    this.log.info("Tributary JS worker ready", {
      heartbeat_timeout_ms: this.H, lease_ttl_ms: this.L, concurrency: this.opts.concurrency,
    });
  }

  // bind opens every bucket, the object store and the streams the manager
  // created, retrying every 250 ms until bindTimeoutMs. It never creates
  // any: nats.js views.os() would create a missing object store, so the
  // store's stream is looked up first.
  async bind() {
    const deadline = Date.now() + this.opts.bindTimeoutMs;
    for (;;) {
      try {
        // TRIBUTARY_SYNC is not looked up: creating the consumer finds it.
        for (const s of [STREAM_CANCEL, STREAM_EVENTS, `OBJ_${OBJECT_STORE}`]) {
          await this.jsm.streams.info(s);
        }
        // views.kv with bindOnly looks nothing up and uses direct gets only
        // when told: read each bucket's stream info for both.
        this.kv = {};
        for (const b of BUCKETS) {
          const si = await this.jsm.streams.info(`KV_tributary_${b}`);
          this.kv[b] = await this.js.views.kv(`tributary_${b}`, { bindOnly: true, allow_direct: !!si.config.allow_direct });
        }
        this.obs = await this.js.views.os(OBJECT_STORE);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`bind: the manager has not created the streams and buckets: ${err.message}`);
        await sleep(250);
      }
    }
    // H: the heartbeat timeout, the manager's. The lease bucket's TTL is
    // the manager's H, so it is the default here. L = min(H, that TTL).
    const ttl = (await this.kv.leases.status()).ttl; // milliseconds, 0 = none
    this.H = this.opts.heartbeatTimeoutMs || ttl || 10000;
    this.L = ttl > 0 ? Math.min(this.H, ttl) : this.H;
  }

  async heartbeat() {
    await this.kv.workers.put(this.id, jc.encode({
      id: this.id, host: os.hostname(), pid: process.pid, version: this.connector.manifest.version,
      connectors: [this.name], concurrency: this.opts.concurrency,
      active_runs: [...this.active.keys()], started_at: this.startedAt, heartbeat_at: now(),
    }));
  }

  // serveConnectionTests answers tributary.test_connection.<name> in the
  // queue group tributary-worker (§5 "Actions and connection tests").
  serveConnectionTests() {
    this.testSub = this.nc.subscribe(`tributary.test_connection.${this.name}`, {
      queue: "tributary-worker",
      callback: async (err, msg) => {
        if (err) return;
        let reply;
        try {
          const req = jc.decode(msg.data);
          const message = await this.connector.testConnection(req.config || {}, req.credentials);
          reply = message ? { worker_id: this.id, message } : { worker_id: this.id, ok: true };
        } catch (e) {
          reply = { worker_id: this.id, error: { code: "action_failed", message: String(e.message || e) } };
        }
        msg.respond(jc.encode(reply));
      },
    });
  }

  // pullLoop fetches one request at a time, only when a slot is free.
  async pullLoop() {
    const running = new Set();
    while (!this.stopping) {
      if (running.size >= this.opts.concurrency) {
        await Promise.race(running);
        continue;
      }
      let msg;
      try {
        msg = await this.consumer.next({ expires: 1000 });
      } catch (err) {
        if (this.stopping) break;
        this.log.warn("pull sync request", { error: err.message });
        await sleep(250);
        continue;
      }
      if (!msg) continue;
      if (this.stopping) {
        msg.nak();
        break;
      }
      const p = this.handle(msg).catch((err) => this.log.error("handle sync request", { error: err.stack || String(err) }));
      running.add(p);
      p.finally(() => running.delete(p));
    }
    await Promise.allSettled(running);
  }

  // handle runs one delivery to its end: ack, nak, term, or (lease lost)
  // nothing. The numbers are those of §5 step 6.
  async handle(msg) {
    // 6.1 Decode.
    let env;
    try {
      env = jc.decode(msg.data);
      if (env.type !== "sync.requested" || !TOKEN.test(env.source_id) || !TOKEN.test(env.run_id) ||
          !env.data || !["full", "incremental"].includes(env.data.mode)) {
        throw new Error("not a valid sync.requested");
      }
    } catch (err) {
      this.log.error("dropping invalid sync request", { subject: msg.subject, error: err.message });
      msg.term();
      return;
    }
    const req = env.data;
    const src = env.source_id;
    const runId = env.run_id;
    let log = this.log.with({ source_id: src, run_id: runId });
    const retry = (what, err) => {
      log.warn(`${what}; the request will be redelivered`, { error: err.message });
      msg.nak(1000);
    };

    // 6.2 Read the run.
    let run;
    try {
      const e = await this.kv.runs.get(runId);
      run = e && e.operation === "PUT" ? e.json() : null;
    } catch (err) {
      return retry("read run record", err);
    }
    if (!run) {
      log.info("dropping request of unknown run");
      msg.ack();
      return;
    }
    if (TERMINAL.has(run.status)) {
      log.info("dropping request of finished run", { status: run.status });
      msg.ack();
      return;
    }

    // 6.3 Count attempts from the stream's last run.started.
    let prev;
    try {
      const last = await this.lastRunEvent(src, runId, "run.started");
      prev = Math.max(last ? last.attempt || 0 : 0, run.attempt || 0);
    } catch (err) {
      return retry("read last attempt", err);
    }
    const attempt = prev + 1;
    log = log.with({ attempt });
    const pub = new Publisher(this.js, src, runId, attempt);

    // 6.4 Cancelled already?
    let cancelled;
    try {
      cancelled = run.cancel_requested || (await this.cancelStored(runId));
    } catch (err) {
      return retry("check cancel", err);
    }
    if (cancelled) {
      await this.finish(log, msg, pub, null, "run.cancelled", { reason: "cancelled before start" });
      return;
    }

    // 6.5 Take the lease.
    let lease;
    try {
      const got = await this.acquireLease(src, runId, attempt);
      if (got.wait !== undefined) {
        log.info("source lease held elsewhere; retrying when it can have expired", { wait_ms: got.wait });
        msg.nak(got.wait);
        return;
      }
      lease = got.lease;
    } catch (err) {
      return retry("take source lease", err);
    }

    // 6.6 Load the checkpoint.
    let checkpoint = null;
    let resumed = false;
    let progressAt = 0;
    try {
      const lastCP = await this.lastRunEvent(src, runId, "checkpoint");
      if (lastCP && lastCP.data && lastCP.data.checkpoint !== undefined && lastCP.data.checkpoint !== null) {
        checkpoint = lastCP.data.checkpoint;
        resumed = true;
        progressAt = lastCP.attempt;
      } else {
        const e = await this.kv.checkpoints.get(src);
        if (e && e.operation === "PUT") {
          const cp = e.json();
          checkpoint = cp.checkpoint;
          resumed = (cp.run_id === runId || (!!req.resume_of && cp.run_id === req.resume_of)) && !cp.final;
        }
      }
    } catch (err) {
      await this.releaseLease(lease);
      return retry("read checkpoint", err);
    }

    // 6.7 Give up? 6.8 Back off?
    const stalled = prev - progressAt;
    if (stalled >= MAX_ATTEMPTS) {
      await this.finish(log, msg, pub, lease, "run.failed", {
        error: `gave up after ${stalled} attempts without progress: each attempt's worker stopped before finishing or saving a checkpoint`,
      });
      return;
    }
    const s = stalled + 1;
    if (s >= 3) {
      const backoff = Math.min(RETRY_BACKOFF_MS * 2 ** (s - 3), 60000);
      const delay = backoff - (Date.now() - Date.parse(run.updated_at));
      if (delay > 0) {
        await this.releaseLease(lease);
        log.info("backing off before retrying the run", { delay_ms: delay });
        msg.nak(delay);
        return;
      }
    }

    // 6.9 run.started.
    try {
      await pub.sync("run.started", { worker_id: this.id, connector: this.name, mode: req.mode, ...(resumed ? { resumed } : {}) });
    } catch (err) {
      await this.releaseLease(lease);
      return retry("publish run.started", err);
    }
    log.info("sync started", { mode: req.mode, resumed });

    // 6.10 Run the sync with the background beat.
    const ar = new ActiveRun(this, runId, pub, log);
    this.active.set(runId, ar);
    if (this.stopping) ar.stopRequested = true;
    const beat = this.beat(ar, msg, lease);
    let outcome;
    try {
      let finalCP;
      if (req.document) {
        throw new Error(`connector ${this.name} cannot re-fetch one document`);
      }
      finalCP = await this.connector.sync({
        sourceId: src, runId, attempt, mode: req.mode, config: req.config || {},
        credentials: req.credentials, checkpoint, resumed, trigger: req.trigger,
      }, ar.context());
      outcome = ar.cancelReason ? "cancelled" : "completed";
      ar.finalCheckpoint = finalCP;
    } catch (err) {
      if (ar.leaseLost) outcome = "lost";
      else if (err instanceof StopRequested || (ar.shutdownCancelled && !ar.cancelReason)) outcome = "handback";
      else if (ar.cancelReason) outcome = "cancelled";
      else if (err instanceof BusError) outcome = "bus";
      else outcome = "failed";
      ar.error = err;
    }
    clearInterval(beat.progress);
    clearInterval(beat.hb);
    await beat.busy;
    this.active.delete(runId);
    if (ar.leaseLost) outcome = "lost";

    if (outcome !== "lost") {
      msg.working(); // the outcome takes a moment: restart the ack deadline
      if (outcome !== "completed") {
        // The final scanned count, so documents_scanned ends exact.
        pub.async("progress", { scanned: ar.scanned }).catch(() => {});
      }
    }
    switch (outcome) {
      case "lost":
        log.warn("source lease lost; abandoning the attempt");
        return;
      case "completed": {
        const data = { scanned: ar.scanned };
        if (ar.finalCheckpoint !== undefined && ar.finalCheckpoint !== null) data.checkpoint = ar.finalCheckpoint;
        if (ar.total) data.total = ar.total;
        await this.finish(log, msg, pub, lease, "run.completed", data);
        return;
      }
      case "cancelled":
        await this.finish(log, msg, pub, lease, "run.cancelled", { reason: ar.cancelReason });
        return;
      case "handback":
      case "bus":
        // Everything published is stored (or given up on); the next attempt
        // resumes from the last checkpoint event. No terminal event.
        try {
          await pub.barrier();
        } catch (err) {
          log.warn("flush events before hand-off", { error: err.message });
        }
        await this.releaseLease(lease);
        if (outcome === "handback") {
          msg.nak();
          log.info("sync handed back for another worker");
        } else {
          msg.nak(1000);
          log.warn("sync interrupted by a NATS error; handed back for another attempt", { error: ar.error.message });
        }
        return;
      default:
        await this.finish(log, msg, pub, lease, "run.failed", { error: String(ar.error && ar.error.message) || "sync failed" });
    }
  }

  // finish is §5 step 14: fence on the lease, publish exactly one terminal
  // event after every earlier one, ack with the server's confirmation,
  // release the lease.
  async finish(log, msg, pub, lease, type, data) {
    if (lease) {
      try {
        await this.refreshLease(lease);
      } catch (err) {
        if (err.leaseLost) {
          log.warn("source lease lost before the outcome; abandoning the attempt", { outcome: type });
          return;
        }
      }
    }
    try {
      await pub.sync(type, data);
    } catch (err) {
      log.error("publish run outcome; the request will be redelivered", { error: err.message });
      await this.releaseLease(lease);
      msg.nak(1000);
      return;
    }
    try {
      await msg.ackAck();
    } catch (err) {
      log.warn("ack sync request", { error: err.message });
    }
    await this.releaseLease(lease);
    log.info("sync finished", { outcome: type });
  }

  // beat: every L/3 push the ack deadline, refresh the lease and poll the
  // cancel stream; every second report progress if it moved.
  beat(ar, msg, lease) {
    const b = { busy: Promise.resolve() };
    let reported = 0;
    let reportedTotal = 0;
    b.progress = setInterval(() => {
      if (ar.scanned !== reported || ar.total !== reportedTotal) {
        reported = ar.scanned;
        reportedTotal = ar.total;
        const data = { scanned: ar.scanned };
        if (ar.total) data.total = ar.total;
        ar.pub.async("progress", data).catch(() => {});
      }
    }, PROGRESS_INTERVAL_MS);
    b.hb = setInterval(() => {
      b.busy = b.busy.then(async () => {
        msg.working();
        try {
          await this.refreshLease(lease);
        } catch (err) {
          if (err.leaseLost) {
            ar.leaseLost = true;
            ar.abort.abort(new Cancelled("source lease lost"));
          } else {
            ar.log.warn("refresh source lease", { error: err.message });
          }
        }
        try {
          if (await this.cancelStored(ar.runId)) ar.cancel("cancelled by request");
        } catch (_) {
          // The next beat tries again.
        }
      });
    }, this.L / 3);
    return b;
  }

  // lastRunEvent is the run's last event of one type in TRIBUTARY_EVENTS,
  // or null (none, or one that does not decode).
  async lastRunEvent(src, runId, type) {
    let sm;
    try {
      sm = await this.jsm.streams.getMessage(STREAM_EVENTS, { last_by_subj: `tributary.events.${src}.${runId}.${type}` });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    try {
      const env = sm.json();
      return env && env.type === type ? env : null;
    } catch (_) {
      return null;
    }
  }

  async cancelStored(runId) {
    try {
      await this.jsm.streams.getMessage(STREAM_CANCEL, { last_by_subj: `tributary.cancel.${runId}` });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  // acquireLease creates the source lease, or says how long to wait.
  async acquireLease(src, runId, attempt) {
    for (let i = 0; i < 3; i++) {
      const t = now();
      const rec = { run_id: runId, worker_id: this.id, attempt, acquired_at: t, refreshed_at: t };
      try {
        const rev = await this.kv.leases.create(src, jc.encode(rec));
        return { lease: { src, rec, rev, lastOK: Date.now() } };
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
      }
      const cur = await this.kv.leases.get(src);
      if (!cur || cur.operation !== "PUT") continue; // expired in between
      const refreshed = Date.parse(cur.json().refreshed_at);
      const wait = this.L - (Date.now() - refreshed) + 100;
      return { wait: Math.min(Math.max(wait, 250), this.L) };
    }
    return { wait: this.L / 2 };
  }

  // refreshLease rewrites the lease if it is still at our revision; an
  // error with leaseLost set means another worker may own the run.
  async refreshLease(lease) {
    lease.rec.refreshed_at = now();
    try {
      lease.rev = await this.kv.leases.update(lease.src, jc.encode(lease.rec), lease.rev);
      lease.lastOK = Date.now();
    } catch (err) {
      if (isWrongRevision(err) || Date.now() - lease.lastOK >= this.L) err.leaseLost = true;
      throw err;
    }
  }

  async releaseLease(lease) {
    if (!lease) return;
    try {
      await this.kv.leases.delete(lease.src, { previousSeq: lease.rev });
    } catch (err) {
      if (!isWrongRevision(err)) this.log.warn("release source lease", { source_id: lease.src, error: err.message });
    }
  }

  // stop is §5 step 7: stop fetching, ask running syncs to stop at their
  // next checkpoint, cancel those still running near the end of the grace
  // period (they are handed back too), then delete the worker record.
  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info("stopping");
    for (const ar of this.active.values()) ar.stopRequested = true;
    const grace = this.opts.shutdownGraceMs;
    const hard = setTimeout(() => {
      for (const ar of this.active.values()) {
        ar.shutdownCancelled = true;
        ar.abort.abort(new Cancelled("worker stopping"));
      }
    }, grace - Math.min(1000, grace / 4));
    await this.pulling;
    clearTimeout(hard);
    clearInterval(this.heartbeatTimer);
    try {
      await this.kv.workers.delete(this.id);
    } catch (err) {
      this.log.warn("delete worker record", { error: err.message });
    }
    await this.nc.drain();
    this.log.info("worker stopped");
  }
}

// ActiveRun is one executing attempt and the context its connector sees.
class ActiveRun {
  constructor(worker, runId, pub, log) {
    Object.assign(this, { worker, runId, pub, log });
    this.scanned = 0;
    this.total = 0;
    this.abort = new AbortController();
    this.cancelReason = "";
    this.stopRequested = false;
    this.shutdownCancelled = false;
    this.leaseLost = false;
  }

  cancel(reason) {
    if (this.cancelReason) return;
    this.cancelReason = reason;
    this.abort.abort(new Cancelled(reason));
  }

  // context is what the connector's sync gets.
  context() {
    const ar = this;
    const w = this.worker;
    return {
      log: ar.log,
      // signal is aborted on cancel, lost lease and forced shutdown.
      signal: ar.abort.signal,
      throwIfCancelled() {
        if (ar.abort.signal.aborted) throw ar.abort.signal.reason;
      },
      incrementScanned(n = 1) {
        ar.scanned += n;
      },
      setTotal(n) {
        ar.total = n;
      },
      // saveContent stores a body once per SHA-256 (§2 object store) and
      // returns its content id.
      async saveContent(data, contentType = "text/plain; charset=utf-8") {
        try {
          return await saveContent(w, Buffer.isBuffer(data) ? data : Buffer.from(String(data)), contentType);
        } catch (err) {
          throw new BusError("store content", err);
        }
      },
      async emit(document, { updated = false } = {}) {
        ar.throwIfAborted();
        const doc = {
          title: "", metadata: {}, permissions: { public: false }, ...document,
        };
        await ar.pub.async("document.upserted", updated ? { document: doc, updated: true } : { document: doc });
      },
      async emitDeleted(externalId) {
        ar.throwIfAborted();
        await ar.pub.async("document.deleted", { external_id: externalId });
      },
      async emitError(externalId, error) {
        ar.throwIfAborted();
        await ar.pub.async("document.error", { external_id: externalId, error: String(error) || "unreadable" });
      },
      // checkpoint stores a resumable position after every earlier event;
      // it throws StopRequested (after storing) when the worker stops.
      async checkpoint(cp) {
        if (cp === null || cp === undefined) throw new Error("a checkpoint cannot be null");
        ar.throwIfAborted();
        await ar.pub.sync("checkpoint", { checkpoint: cp });
        if (ar.stopRequested) throw new StopRequested();
      },
    };
  }

  throwIfAborted() {
    if (this.abort.signal.aborted) throw this.abort.signal.reason;
  }
}

// saveContent: hash, look the digest up in tributary_content_index, else
// store a new object under a fresh ULID and then create the index entry
// (create-only: on a lost race use the winner's id and delete ours).
async function saveContent(w, data, contentType) {
  const digest = crypto.createHash("sha256").update(data).digest("hex");
  const hit = await w.kv.content_index.get(digest);
  if (hit && hit.operation === "PUT") return hit.json().content_id;
  const id = ulid();
  const h = headers();
  h.set("Content-Type", contentType);
  h.set("Tributary-Content-Sha256", digest);
  // nats.js writes object headers as a map of string lists, as Go reads them.
  await w.obs.putBlob({ name: id, headers: h }, new Uint8Array(data));
  try {
    await w.kv.content_index.create(digest, jc.encode({
      content_id: id, size: data.length, content_type: contentType, created_at: now(),
    }));
  } catch (err) {
    if (!isWrongRevision(err)) throw err;
    const other = await w.kv.content_index.get(digest);
    await w.obs.delete(id).catch(() => {});
    return other.json().content_id;
  }
  return id;
}

module.exports = { Worker, StopRequested, Cancelled, BusError, ulid };
