import * as assert from 'assert';
import { RequestChannel, RequestError, unhandled } from '../../src/protocol';

type Req = { id: number; x: number };
type Ans = { id: number; y?: number; error?: string };

describe('the request/reply helper (host ↔ webview ↔ workers)', () => {
  it('matches answers to requests by id, in any order', async () => {
    const sent: Req[] = [];
    const ch = new RequestChannel<Req, Ans>((m) => sent.push(m));
    const a = ch.request({ x: 1 });
    const b = ch.request({ x: 2 });
    assert.deepStrictEqual(
      sent.map((m) => m.x),
      [1, 2],
    );
    assert.notStrictEqual(sent[0].id, sent[1].id);
    ch.answer({ id: sent[1].id, y: 20 });
    ch.answer({ id: sent[0].id, y: 10 });
    assert.deepStrictEqual([(await a).y, (await b).y], [10, 20]);
    assert.strictEqual(ch.latestId, sent[1].id);
  });

  it('rejects with the answer’s error, and ignores answers nobody waits for', async () => {
    const sent: Req[] = [];
    const ch = new RequestChannel<Req, Ans>((m) => sent.push(m));
    const a = ch.request({ x: 1 });
    ch.answer({ id: 999, y: 1 });
    ch.answer({ id: sent[0].id, error: 'layout failed: boom' });
    await assert.rejects(a, (e: Error) => e instanceof RequestError && e.message === 'layout failed: boom');
    ch.answer({ id: sent[0].id, y: 2 }); // a late duplicate: nothing happens
  });

  it('rejects every open request when the other side fails, and on a timeout', async () => {
    const ch = new RequestChannel<Req, Ans>(() => undefined);
    const a = ch.request({ x: 1 });
    const b = ch.request({ x: 2 });
    ch.failAll('the layout worker failed: out of memory');
    await assert.rejects(a, /out of memory/);
    await assert.rejects(b, /out of memory/);
    const slow = new RequestChannel<Req, Ans>(() => undefined, 20);
    await assert.rejects(slow.request({ x: 3 }, 'the kernel'), /the kernel got no answer within 0 s/);
  });

  it('rejects when the message cannot be sent', async () => {
    const ch = new RequestChannel<Req, Ans>(() => {
      throw new Error('the webview is disposed');
    });
    await assert.rejects(ch.request({ x: 1 }, 'the kernel'), /the kernel could not be sent: the webview is disposed/);
  });

  it('unhandled() throws for a message a switch did not handle', () => {
    assert.throws(() => unhandled({ type: 'surprise' } as never), /unhandled message "surprise"/);
  });
});
