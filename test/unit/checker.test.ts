import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Checker } from '../../src/node/checker';

/** The compiled worker beside the compiled checker (out/src/node/check-worker.js). */
const SCRIPT = path.join(__dirname, '..', '..', 'src', 'node', 'check-worker.js');

const plan = (layers: number, pipeline: number, nodes: number) =>
  JSON.stringify({
    model: { arch: 'gpt', layers, hidden: 256, heads: 8, vocab: 1000, seqLen: 128 },
    cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes },
    training: { globalBatch: 8 * pipeline, microBatch: 1, seqLen: 128 },
    parallel: { data: (8 * nodes) / pipeline, tensor: 1, pipeline },
  });

describe('plan checks off the editor thread (a worker with a time budget and cancellation)', function () {
  this.timeout(60000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-checker-'));
  const file = path.join(dir, 'p.plan.json');

  it('checks a plan on the worker: the same diagnostics as the engine gives inline', async () => {
    const onWorker = new Checker(SCRIPT);
    const inline = new Checker(path.join(dir, 'no-such-worker.js'));
    try {
      const text = plan(8, 2, 1).replace('"tensor":1', '"tensor":3');
      const a = await onWorker.run('check', file, text);
      const b = await inline.run('check', file, text);
      assert.ok('done' in a && 'done' in b);
      assert.ok(a.done.diagnostics!.length > 0);
      assert.deepStrictEqual(a.done.diagnostics, b.done.diagnostics);
      const est = await onWorker.run('estimate', file, plan(8, 2, 1));
      assert.ok('done' in est && est.done.report && est.done.report.iterationSeconds > 0);
    } finally {
      onWorker.dispose();
    }
  });

  it("the planner's check on the worker: its diagnostics and the workload it built, as the engine gives them inline", async () => {
    const onWorker = new Checker(SCRIPT);
    const inline = new Checker(path.join(dir, 'no-such-worker.js'));
    try {
      const text = plan(8, 2, 1).replace('"gpusPerNode":8', '"gpusPerNode":4');
      const a = await onWorker.run('planner', file, text);
      const b = await inline.run('planner', file, text);
      assert.ok('done' in a && 'done' in b);
      assert.ok(
        a.done.diagnostics!.some((d) => d.severity === 'error'),
        JSON.stringify(a.done.diagnostics),
      );
      assert.deepStrictEqual(a.done.diagnostics, b.done.diagnostics);
      const ok = await onWorker.run('planner', file, plan(8, 2, 1));
      assert.ok('done' in ok && ok.done.source, 'a valid plan comes back with the workload the check built');
      assert.deepStrictEqual(
        ok.done.source,
        ((await inline.run('planner', file, plan(8, 2, 1))) as { done: { source: unknown } }).done.source,
      );
      // A planner check and a Problems-panel check of the same file do not cancel each other.
      const [p, c] = await Promise.all([onWorker.run('planner', file, text), onWorker.run('check', file, text)]);
      assert.ok('done' in p && 'done' in c);
    } finally {
      onWorker.dispose();
    }
  });

  it('a newer request for the same file supersedes the one in flight', async () => {
    const checker = new Checker(SCRIPT);
    try {
      const order: string[] = [];
      const slow = checker.run('estimate', file, plan(100000, 1000, 125)).finally(() => order.push('older'));
      const fast = checker.run('estimate', file, plan(8, 2, 1)).finally(() => order.push('newer'));
      const [a, b] = await Promise.all([slow, fast]);
      // The older one is answered 'superseded' at once; its late result is dropped, never shown over the newer.
      assert.deepStrictEqual(a, { superseded: true });
      assert.deepStrictEqual(order, ['older', 'newer']);
      assert.ok('done' in b && b.done.report && b.done.report.stages.length === 2);
    } finally {
      checker.dispose();
    }
  });

  it('a request past its time budget is stopped and says so', async () => {
    const checker = new Checker(SCRIPT, 50);
    try {
      const r = await checker.run('estimate', file, plan(100000, 1000, 125));
      assert.ok('skipped' in r, JSON.stringify(r).slice(0, 200));
      assert.match(r.skipped, /stopped after 0 s .*layerplan check/);
      // The next request gets a fresh worker.
      const again = await new Checker(SCRIPT).run('check', file, plan(8, 2, 1));
      assert.ok('done' in again);
    } finally {
      checker.dispose();
    }
  });
});
