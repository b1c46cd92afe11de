// A first MMSB program in Node.js: pages, a write, a derived page, a
// transaction, events, a durable wait, and a reopen to the same state root.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const mmsb = require('mmsb');

async function main(dir) {
  const e = new mmsb.Engine(dir, { durability: mmsb.DURABILITY_GROUP });
  const a = e.pageCreate(4096);
  const b = e.pageCreate(4096);
  const total = e.pageCreate(4096);
  e.derive(total, mmsb.OP_SUM_U32, [a, b]);               // total = a + b, lane by lane
  e.subscribe(mmsb.EVENT_COMMIT, (ev) => console.log(`commit ${ev.commitSeq}`));

  const change = e.write(a, 0, Buffer.from([7, 0, 0, 0]));
  console.log(`wrote ${change.bytesChanged} bytes, page ${a} is at epoch ${change.epoch}`);
  const t = e.transaction();                              // both writes commit as one
  t.write(a, 4, Buffer.from([1, 0, 0, 0]));
  t.write(b, 0, Buffer.from([35, 0, 0, 0]));
  const result = t.commit();
  console.log(`the transaction recomputed ${result.recomputes} derived page(s)`);
  await e.waitDurable(result.commitSeq);                  // GROUP: resolves once it is on disk

  const first = e.read(total, 0, 4).readUInt32LE(0);
  console.log(`total[0] = ${first}`);
  const root = e.stateRoot();
  e.close();
  const again = new mmsb.Engine(dir);                     // the log rebuilds the same state
  if (again.stateRoot() !== root || first !== 42) throw new Error('not the same state');
  again.close();
  console.log(`reopened: same state root ${root}`);
}

main(process.argv[2] || fs.mkdtempSync(path.join(os.tmpdir(), 'mmsb-example-'))).catch((err) => {
  console.error(err);
  process.exit(1);
});
