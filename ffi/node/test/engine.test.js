'use strict';
// The Node.js binding against the real library: pages, reads into buffers,
// deltas, transactions, derived pages, user operations, events, promises,
// errors, readers, and a reopen reaching the same state root. `make test`
// runs it with MMSB_NODE_ADDON pointing at the build's addon.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const mmsb = require('..');

function store(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsb-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 's');
}

const small = { durability: mmsb.DURABILITY_NONE, gpu: mmsb.GPU_OFF, arenaBytesMax: 256 * 2 ** 20,
                pageBytesMax: 64 * 2 ** 20, arenaGrowBytes: 2 ** 20, segmentBytes: 4 * 2 ** 20, pagesMax: 65536 };

test('versions', () => {
  assert.strictEqual(mmsb.abiVersion(), 1);
  assert.strictEqual(mmsb.version(), require('../package.json').version);
  assert.match(mmsb.strerror(-32006), /corrupt/);
});

test('device placement on the emulated device', (t) => {
  const e = new mmsb.Engine(store(t), { ...small, gpu: mmsb.GPU_EMULATE, gpuThresholdBytes: 8192 });
  const big = e.pageCreate(2 ** 20);
  const tiny = e.pageCreate(100);
  const forced = e.pageCreate(64, mmsb.PAGE_DEVICE);
  assert.deepStrictEqual([big, tiny, forced].map((p) => e.pageInfo(p).location),
                         [mmsb.LOC_DEVICE, mmsb.LOC_HOST, mmsb.LOC_DEVICE]);
  e.write(big, 5000, Buffer.alloc(300, 7));
  assert.deepStrictEqual(e.read(big, 5000, 300), Buffer.alloc(300, 7));
  const info = e.info();
  assert.deepStrictEqual([info.gpuPages, info.gpuThresholdBytes, info.gpuThresholdSource],
                         [2, 8192, mmsb.GPU_THRESHOLD_OPTION]);
  assert.ok(info.gpuDevice.length > 0);
  assert.throws(() => e.pageCreate(64, mmsb.PAGE_HOST | mmsb.PAGE_DEVICE), /flags/);
  e.close();
});

test('pages, writes, reads and a reopen', (t) => {
  const dir = store(t);
  const e = new mmsb.Engine(dir, small);
  const p = e.pageCreate(4096);
  const change = e.write(p, 10, Buffer.from('hello'));
  assert.deepStrictEqual([change.epoch, change.bytesChanged], [1, 5]);
  assert.strictEqual(e.write(p, 10, 'hello').bytesChanged, 0); // same bytes: no commit
  assert.strictEqual(e.read(p, 10, 5).toString(), 'hello');
  assert.strictEqual(e.read(p).length, 4096);
  const { data, epoch } = e.readWithEpoch(p, 12, 3);
  assert.deepStrictEqual([data.toString(), epoch], ['llo', 1]);
  const into = new Uint8Array(16);
  assert.strictEqual(e.readInto(p, 8, into.subarray(2, 9)), 1); // a window of a larger array
  assert.strictEqual(Buffer.from(into.subarray(4, 9)).toString(), 'hello');
  const words = new Uint32Array(2);
  e.readInto(p, 10, words);
  assert.strictEqual(Buffer.from(words.buffer).subarray(0, 5).toString(), 'hello');
  const info = e.pageInfo(p);
  assert.deepStrictEqual([info.size, info.epoch, info.location], [4096, 1, mmsb.LOC_HOST]);
  assert.strictEqual(e.pageDigest(p).length, 32);
  const first = e.pageCreateMany(64, 10);
  assert.strictEqual(e.pageInfo(first + 9).size, 64);
  const root = e.stateRoot();
  assert.match(root, /^[0-9a-f]{32}$/);
  e.close();
  e.close(); // a second close does nothing
  assert.throws(() => e.read(p), /closed/);
  const again = new mmsb.Engine(dir, small);
  assert.strictEqual(again.stateRoot(), root);
  assert.ok(again.info().recoveredCommits > 0);
  again.close();
});

test('errors carry the code, its name and the detail; bad arguments throw before the library', (t) => {
  const e = new mmsb.Engine(store(t), small);
  t.after(() => e.close());
  const p = e.pageCreate(64);
  assert.throws(() => e.read(p + 100), (err) => err.code === -32002 && err.codeName === 'MMSB_ENOTFOUND' &&
                err.detail.includes(String(p + 100)));
  assert.throws(() => e.write(p, 60, Buffer.alloc(10)), { codeName: 'MMSB_EINVAL' });
  assert.throws(() => e.write(p, -1, Buffer.alloc(1)), RangeError);
  assert.throws(() => e.write(p, 0.5, Buffer.alloc(1)), RangeError);
  assert.throws(() => e.write('1', 0, Buffer.alloc(1)), TypeError);
  assert.throws(() => e.write(p, 0, 42), TypeError);
  assert.throws(() => e.readInto(p, 0, 'not a buffer'), TypeError);
  assert.throws(() => new mmsb.Engine(store(t), { noSuchOption: 1 }), /unknown option 'noSuchOption'/);
  assert.throws(() => new mmsb.Engine('', small), RangeError);
  assert.throws(() => new mmsb.Engine(store(t), { durability: 9 }), { codeName: 'MMSB_EINVAL' });
  assert.strictEqual(e.pageInfo(p).epoch, 0); // nothing changed
  assert.strictEqual(e.write(BigInt(p), 0n, Buffer.from('b')).epoch, 1); // BigInts are ids too
});

test('deltas, conflicts, batches and transactions', (t) => {
  const e = new mmsb.Engine(store(t), small);
  t.after(() => e.close());
  const a = e.pageCreate(64);
  const b = e.pageCreate(64);
  assert.strictEqual(e.apply({ pageId: a, offset: 0, payload: Buffer.from([0xaa, 0xbb]), mask: Buffer.from([5]),
                               length: 3, sparse: true }).bytesChanged, 2);
  assert.deepStrictEqual([...e.read(a, 0, 3)], [0xaa, 0, 0xbb]);
  assert.throws(() => e.apply({ pageId: a, offset: 0, payload: Buffer.from([1]), expectedEpoch: 7 }),
                { codeName: 'MMSB_ECONFLICT' });
  const r = e.applyBatch([{ pageId: a, offset: 4, payload: Buffer.from('x') },
                          { pageId: b, offset: 0, payload: Buffer.from('y') }]);
  assert.strictEqual(r.bytesChanged, 2);
  const t1 = e.transaction();
  t1.write(a, 10, 'one');
  t1.write(b, 10, 'two');
  assert.strictEqual(e.read(a, 10, 3).toString(), '\0\0\0'); // staged only
  assert.throws(() => e.close(), { codeName: 'MMSB_EBUSY' }); // a transaction is open
  assert.strictEqual(t1.commit().bytesChanged, 6);
  assert.throws(() => t1.write(a, 0, 'late'), /ended/);
  const t2 = e.transaction();
  t2.write(a, 20, 'dropped');
  t2.abort();
  t2.abort();
  assert.strictEqual(e.read(a, 20, 7).toString(), '\0'.repeat(7));
});

test('derived pages, a JavaScript operation, and its failures rolled back', (t) => {
  const e = new mmsb.Engine(store(t), small);
  t.after(() => e.close());
  const a = e.pageCreate(8);
  const b = e.pageCreate(8);
  const sum = e.pageCreate(8);
  const max = e.pageCreate(8);
  e.derive(sum, mmsb.OP_SUM_U32, [a, b]);
  e.registerOp(mmsb.OP_USER_FIRST, 1, (input) => {
    if (input.parents[0][0] === 0xee) throw new Error('0xee is refused');
    return Buffer.from(input.parents[0].map((v, i) => Math.max(v, input.parents[1][i])));
  });
  e.derive(max, mmsb.OP_USER_FIRST, [a, b]);
  e.write(a, 0, Buffer.from([1, 9]));
  e.write(b, 0, Buffer.from([5, 2]));
  assert.deepStrictEqual([...e.read(max, 0, 2)], [5, 9]);
  assert.strictEqual(e.read(sum).readUInt32LE(0), (1 + 9 * 256) + (5 + 2 * 256)); // lane by lane
  const root = e.stateRoot();
  assert.throws(() => e.write(a, 0, Buffer.from([0xee])), (err) => err.codeName === 'MMSB_EOP' &&
                err.cause instanceof Error && err.cause.message === '0xee is refused');
  assert.strictEqual(e.stateRoot(), root); // rolled back
  e.registerOp(mmsb.OP_USER_FIRST, 1, () => Buffer.alloc(3)); // wrong size: its first call fails
  assert.throws(() => e.write(a, 0, Buffer.from([2])), (err) => err.cause instanceof RangeError);
  assert.strictEqual(e.stateRoot(), root);
  e.underive(max);
  e.edgeRemove(b, sum);
  assert.throws(() => e.edgeAdd(sum, a), { codeName: 'MMSB_EINVAL' }); // a is not derived
});

test('events, and a throwing listener after its commit', (t) => {
  const e = new mmsb.Engine(store(t), small);
  t.after(() => e.close());
  const p = e.pageCreate(64);
  const seen = [];
  const sub = e.subscribe(mmsb.EVENT_PAGE_CHANGED | mmsb.EVENT_COMMIT, (ev) => seen.push(ev));
  const change = e.write(p, 0, 'event');
  assert.deepStrictEqual(seen.map((ev) => ev.type), [mmsb.EVENT_PAGE_CHANGED, mmsb.EVENT_COMMIT]);
  assert.deepStrictEqual([seen[0].pageId, seen[0].bytesChanged, seen[1].commitSeq], [p, 5, change.commitSeq]);
  e.unsubscribe(sub);
  e.write(p, 0, 'quiet');
  assert.strictEqual(seen.length, 2);
  e.subscribe(mmsb.EVENT_COMMIT, () => { throw new Error('listener failed'); });
  assert.throws(() => e.write(p, 0, 'kept'), /listener failed/);
  assert.strictEqual(e.read(p, 0, 4).toString(), 'kept'); // the commit happened
});

test('waitDurable is a promise; close waits for none', async (t) => {
  const e = new mmsb.Engine(store(t), { ...small, durability: mmsb.DURABILITY_GROUP });
  const p = e.pageCreate(64);
  const change = e.write(p, 0, 'durable');
  const waiting = e.waitDurable(change.commitSeq);
  assert.ok(waiting instanceof Promise);
  assert.throws(() => e.close(), { codeName: 'MMSB_EBUSY' }); // a wait is pending
  await waiting;
  assert.ok(e.info().durableSeq >= change.commitSeq);
  await assert.rejects(e.waitDurable(change.commitSeq + 1000), { codeName: 'MMSB_EINVAL' });
  e.close();
});

test('an attached reader and the log reader', (t) => {
  const dir = store(t);
  const e = new mmsb.Engine(dir, { ...small, flags: mmsb.OPEN_CREATE | mmsb.OPEN_KEEP_LOG });
  const p = e.pageCreate(64);
  e.write(p, 0, 'attached');
  const reader = new mmsb.Attach(dir);
  const { data, epoch } = reader.read(p, 0, 8);
  assert.deepStrictEqual([data.toString(), epoch], ['attached', 1]);
  assert.strictEqual(reader.pageInfo(p).size, 64);
  reader.close();
  e.close();
  const log = new mmsb.LogReader(dir);
  const records = [...log];
  log.close();
  assert.ok(records.some((r) => r.name === 'DELTA' && r.pageId === p && r.committed));
  assert.ok(records.filter((r) => r.name === 'COMMIT').length >= 2);
  assert.throws(() => new mmsb.LogReader(path.join(dir, 'none')), { codeName: 'MMSB_ENOTFOUND' });
});

test('an engine dropped without close() is closed by the collector', (t) => {
  if (typeof global.gc !== 'function') return t.skip('run with --expose-gc');
  const dir = store(t);
  (() => { const e = new mmsb.Engine(dir, small); e.write(e.pageCreate(8), 0, 'gc'); })();
  global.gc();
  return new Promise((resolve) => setImmediate(resolve)).then(() => {
    global.gc();
    const again = new mmsb.Engine(dir, small);
    assert.strictEqual(again.read(1, 0, 2).toString(), 'gc');
    again.close();
  });
});

test('the README shows the example, and it runs', (t) => {
  const { execFileSync } = require('node:child_process');
  const example = path.join(__dirname, '..', 'examples', 'quickstart.js');
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const block = readme.split('<!-- node:begin -->\n```js\n')[1].split('```\n<!-- node:end -->')[0];
  assert.strictEqual(block, fs.readFileSync(example, 'utf8'));
  // `require('mmsb')` resolves to this package, as it does once installed.
  const modules = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsb-node-modules-'));
  t.after(() => fs.rmSync(modules, { recursive: true, force: true }));
  fs.symlinkSync(path.join(__dirname, '..'), path.join(modules, 'mmsb'));
  const out = execFileSync(process.execPath, [example, store(t)],
                           { env: { ...process.env, NODE_PATH: modules }, encoding: 'utf8' });
  assert.match(out, /total\[0\] = 42/);
  assert.match(out, /reopened: same state root/);
});

test('a handle of one kind where another is expected is a TypeError', (t) => {
  const dir = store(t);
  const e = new mmsb.Engine(dir, small);
  t.after(() => e.close());
  const tx = e.transaction();
  const native = require(process.env.MMSB_NODE_ADDON || path.join(__dirname, '..', 'mmsb.node'));
  assert.throws(() => native.write(tx._h, 1, 0, Buffer.alloc(1)), /not an engine handle/);
  assert.throws(() => native.txnCommit(e._h, 0), /not a transaction handle/);
  assert.throws(() => native.logNext(e._h), /not a log reader handle/);
  assert.throws(() => native.write({}, 1, 0, Buffer.alloc(1)), /not an engine handle/);
  assert.throws(() => native.write(42, 1, 0, Buffer.alloc(1)), /not an engine handle/);
  tx.abort();
});

test('a process that exits with an engine, a transaction and a wait still open', (t) => {
  const { execFileSync } = require('node:child_process');
  const dir = store(t);
  const script = `
    const mmsb = require(${JSON.stringify(path.join(__dirname, '..'))});
    const e = new mmsb.Engine(${JSON.stringify(dir)}, { flags: mmsb.OPEN_CREATE, durability: mmsb.DURABILITY_GROUP });
    const p = e.pageCreate(64);
    e.waitDurable(e.write(p, 0, 'left open').commitSeq).then(() => {
      e.transaction().write(p, 0, 'never committed');
      e.waitDurable(e.write(p, 20, 'maybe').commitSeq); // still pending at the exit
      process.exit(0);
    });`;
  execFileSync(process.execPath, ['-e', script], { env: process.env }); // throws on a crash
  const again = new mmsb.Engine(dir, small);
  t.after(() => again.close());
  assert.strictEqual(again.read(1, 0, 9).toString(), 'left open');
});

test('export and import make a store with the same state', (t) => {
  const dir = store(t);
  const e = new mmsb.Engine(dir, small);
  const a = e.pageCreate(16), b = e.pageCreate(16), x = e.pageCreate(16);
  e.write(a, 0, 'left');
  e.derive(x, mmsb.OP_XOR, [a, b]);
  const streamPath = path.join(path.dirname(dir), 'stream');
  let fd = fs.openSync(streamPath, 'w');
  const out = e.export(fd);
  fs.closeSync(fd);
  assert.deepStrictEqual([out.pages, out.derived, out.pageIdNext], [3, 1, 4]);
  assert.strictEqual(out.stateRoot, e.stateRoot());
  assert.strictEqual(out.streamBytes, fs.statSync(streamPath).size);
  const copy = path.join(path.dirname(dir), 'copy');
  fd = fs.openSync(streamPath, 'r');
  assert.deepStrictEqual(mmsb.importStore(copy, fd, small), out);
  fs.closeSync(fd);
  const d = new mmsb.Engine(copy, small);
  d.write(b, 0, 'right');
  e.write(b, 0, 'right');
  assert.strictEqual(d.stateRoot(), e.stateRoot());
  assert.strictEqual(d.read(x, 0, 5).toString('hex'), e.read(x, 0, 5).toString('hex'));
  d.close();
  const bytes = fs.readFileSync(streamPath);
  bytes[bytes.length >> 1] ^= 1;
  fs.writeFileSync(streamPath, bytes);
  fd = fs.openSync(streamPath, 'r');
  const other = path.join(path.dirname(dir), 'other');
  assert.throws(() => mmsb.importStore(other, fd, small), /corrupt/);
  fs.closeSync(fd);
  assert.ok(!fs.existsSync(other));
  e.close();
});
