'use strict';
// MMSB for Node.js: a deterministic shared-memory page engine with a
// transaction log. The native part (mmsb_node.c, N-API) makes the calls;
// this file gives them a JavaScript shape. README.md shows the API.

const path = require('path');

/** Where the native addon is looked for, in order. */
function addonCandidates() {
  const fromEnv = process.env.MMSB_NODE_ADDON;
  if (fromEnv) return [fromEnv];
  return [path.join(__dirname, 'mmsb.node'), path.join(__dirname, 'build', 'Release', 'mmsb.node')];
}

function loadAddon() {
  const tried = [];
  for (const candidate of addonCandidates()) {
    try {
      return require(candidate);
    } catch (err) {
      tried.push(`${candidate} (${err.message.split('\n')[0]})`);
    }
  }
  throw new Error(`mmsb: cannot load the native addon; tried: ${tried.join('; ')}. ` +
                  'Build it with `make node` in the MMSB repository, or set MMSB_NODE_ADDON.');
}

const native = loadAddon();

const constants = {
  OPEN_CREATE: 0x1, OPEN_SALVAGE: 0x2, OPEN_KEEP_LOG: 0x4, OPEN_READONLY: 0x8,
  DURABILITY_NONE: 1, DURABILITY_GROUP: 2, DURABILITY_SYNC: 3, DURABILITY_REPLICATED: 4,
  GPU_AUTO: 0, GPU_OFF: 1, GPU_EMULATE: 2, GPU_CUDA: 3,
  GPU_THRESHOLD_NONE: 0, GPU_THRESHOLD_OPTION: 1, GPU_THRESHOLD_DEFAULT: 2, GPU_THRESHOLD_CALIBRATED: 3,
  PAGE_HOST: 0x1, PAGE_DEVICE: 0x2,
  OP_COPY: 1, OP_CONCAT: 2, OP_XOR: 3, OP_SUM_U32: 4, OP_SUM_U64: 5, OP_MAX_U8: 6, OP_MAX_U32: 7, OP_MAX_U64: 8,
  OP_USER_FIRST: 0x10000,
  EVENT_PAGE_CHANGED: 0x1, EVENT_DERIVED: 0x2, EVENT_COMMIT: 0x4, EVENT_TRUNCATED: 0x1,
  LOC_HOST: 1, LOC_DEVICE: 2,
};

const RECORD_NAMES = ['END', 'PAGE_CREATE', 'PAGE_FREE', 'DELTA', 'COMMIT', 'SEAL', 'DERIVE', 'UNDERIVE',
                      'EDGE_ADD', 'EDGE_REMOVE', 'DERIVED', 'ABORT', 'CHECKPOINT'];

function bytes(data) {
  return typeof data === 'string' ? Buffer.from(data) : data;
}

/** An open store. Options are the fields of mmsb_options in camelCase. */
class Engine {
  constructor(dir, options = {}) {
    this._h = native.open(dir, options);
    this._dir = dir;
  }

  _handle() {
    if (this._h === null) throw new Error('the engine is closed');
    return this._h;
  }

  /** Syncs, checkpoints when anything was committed, and closes. A second close does nothing. */
  close() {
    if (this._h === null) return;
    native.close(this._h);
    this._h = null;
  }

  /** Creates a zero page of `size` bytes in a commit of its own; its id. */
  pageCreate(size, flags = 0) { return native.pageCreate(this._handle(), size, flags, 1); }

  /** Creates `count` zero pages in one commit; the first id (ids are consecutive). */
  pageCreateMany(size, count, flags = 0) { return native.pageCreate(this._handle(), size, flags, count); }

  pageFree(pageId) { native.pageFree(this._handle(), pageId); }

  /** {pageId, size, epoch, location, flags} */
  pageInfo(pageId) { return native.pageInfo(this._handle(), pageId); }

  /** A copy of the page's bytes (all of one epoch) as a Buffer. */
  read(pageId, offset = 0, length = undefined) { return native.read(this._handle(), pageId, offset, length)[0]; }

  /** {data, epoch} */
  readWithEpoch(pageId, offset = 0, length = undefined) {
    const [data, epoch] = native.read(this._handle(), pageId, offset, length);
    return { data, epoch };
  }

  /** Fills `buffer` (a Buffer, TypedArray or DataView) from `offset`; returns the epoch. */
  readInto(pageId, offset, buffer) { return native.readInto(this._handle(), pageId, offset, buffer); }

  /** Writes `data` (bytes, or a string as UTF-8) at `offset` as one commit; {epoch, bytesChanged, commitSeq}. */
  write(pageId, offset, data) { return native.write(this._handle(), pageId, offset, bytes(data)); }

  /** Applies one delta {pageId, offset, payload, mask?, length?, sparse?, expectedEpoch?} as one commit. */
  apply(delta) { return native.apply(this._handle(), delta); }

  /** Applies the deltas as one commit, all or none; the commit's result. */
  applyBatch(deltas, durability = 0) { return native.applyBatch(this._handle(), deltas, durability); }

  /** A Transaction: stage writes and deltas, then commit() or abort(). */
  transaction() { return new Transaction(this, native.txnBegin(this._handle())); }

  /** Makes `child` derived by operation `op` from `parents`; computed in the same commit. */
  derive(child, op, parents, params = Buffer.alloc(0)) {
    return native.derive(this._handle(), child, op, parents, params);
  }

  underive(child) { return native.edge(this._handle(), 0, child, 0); }
  edgeAdd(parent, child) { return native.edge(this._handle(), 1, parent, child); }
  edgeRemove(parent, child) { return native.edge(this._handle(), 2, parent, child); }

  /**
   * Registers fn(input) -> Buffer (exactly the child's size) as user operation `op` at `version`.
   * input: {childId, opVersion, parentIds, parentEpochs, parents: Buffer[], params: Buffer}.
   * A throw fails the commit; the call throws MMSB_EOP with the exception as `cause`.
   */
  registerOp(op, version, fn) {
    if (typeof fn !== 'function') throw new TypeError('fn must be a function');
    native.registerOp(this._handle(), op, version, fn);
  }

  /** Calls fn(event) after each commit for the event types in mask; the subscription id. */
  subscribe(mask, fn) {
    if (typeof fn !== 'function') throw new TypeError('fn must be a function');
    return native.subscribe(this._handle(), mask, fn);
  }

  unsubscribe(subscription) { native.unsubscribe(this._handle(), subscription); }

  /** Makes every commit so far durable. */
  sync() { native.simple(this._handle(), 0, 0); }

  /** Writes a checkpoint now. */
  checkpoint() { native.simple(this._handle(), 1, 0); }

  setDurability(durability) { native.simple(this._handle(), 2, durability); }

  /** A Promise that resolves once the commit is durable (the wait runs off the main thread). */
  waitDurable(commitSeq) { return native.wait(this._handle(), commitSeq, false); }

  /** A Promise that resolves once the commit is durable and stored by the replication stream. */
  waitReplicated(commitSeq) { return native.wait(this._handle(), commitSeq, true); }

  /** The page's digest as 32 hex digits. */
  pageDigest(pageId) {
    if (pageId === undefined) throw new TypeError('pageId is required');
    return native.digest(this._handle(), pageId);
  }

  /** The state root as 32 hex digits. */
  stateRoot() { return native.digest(this._handle(), undefined); }

  /**
   * Writes the committed state as an export stream (tlog/EXPORT.md) to the
   * file descriptor fd (fs.openSync) from its position on; importStore makes
   * a new store of it. Returns {pages, derived, pageBytes, streamBytes,
   * commitSeq, pageIdNext, stateRoot}.
   */
  export(fd) { return native.exportTo(this._handle(), fd); }

  /** Counters and limits (a part of mmsb_engineinfo). */
  info() { return native.info(this._handle()); }

  toString() { return `[mmsb.Engine ${this._dir} ${this._h === null ? 'closed' : 'open'}]`; }
}

/** Staged changes, committed as one by commit() or dropped by abort(). */
class Transaction {
  constructor(engine, handle) {
    this._engine = engine;
    this._h = handle;
  }

  write(pageId, offset, data) { native.txnStage(this._h, pageId, offset, bytes(data)); }

  apply(delta) { native.txnStage(this._h, delta); }

  /** Applies everything staged as one commit; the commit's result. */
  commit(durability = 0) { return native.txnCommit(this._h, durability); }

  /** Drops everything staged; a second abort does nothing. */
  abort() { native.txnAbort(this._h); }
}

/** A read-only view of the pages of an engine another process runs on `dir`. */
class Attach {
  constructor(dir) { this._h = native.readerOpen(0, dir); }

  /** {data, epoch}: consistent bytes of the page. */
  read(pageId, offset = 0, length = undefined) {
    const [data, epoch] = native.attachRead(this._h, pageId, offset, length);
    return { data, epoch };
  }

  pageInfo(pageId) { return native.attachPageInfo(this._h, pageId); }

  close() { native.readerClose(0, this._h); }
}

/** The records of a store's log, each checked as it is read: `for (const r of new LogReader(dir))`. */
class LogReader {
  constructor(dir) { this._h = native.readerOpen(1, dir); }

  * [Symbol.iterator]() {
    for (;;) {
      const record = native.logNext(this._h);
      if (record === null) return;
      record.name = RECORD_NAMES[record.type] || String(record.type);
      yield record;
    }
  }

  close() { native.readerClose(1, this._h); }
}

/**
 * Makes a new store in dir (absent, or an empty directory) from the export
 * stream read from the file descriptor fd to its end; options as for Engine.
 * Every frame is checked and the state root must match the stream's; on any
 * error nothing is left at dir.
 */
function importStore(dir, fd, options = {}) {
  return native.importStore(dir, fd, options);
}

module.exports = {
  Engine, Transaction, Attach, LogReader, importStore, ...constants,
  version: native.version,
  abiVersion: native.abiVersion,
  strerror: native.strerror,
};
