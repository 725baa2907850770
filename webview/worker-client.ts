import { RequestChannel } from '../src/protocol';

/**
 * A web worker behind the request/reply helper of src/protocol.ts: started on first use from the
 * bundled script (the CSP allows workers from blob: only), requests matched to answers by id. When
 * the worker fails (its script does not load, it crashes, it runs out of memory) every open request
 * rejects, `onFailure` tells the user, and the next request starts a fresh worker: the view recovers.
 */
export class WorkerClient<Req extends { id: number }, Ans extends { id: number; error?: string }> {
  private worker?: Promise<Worker>;
  private readonly channel = new RequestChannel<Req, Ans>((m) => void this.start().then((w) => w.postMessage(m)));

  constructor(
    private readonly url: string,
    /** What the worker does, for messages: "the layout worker". */
    private readonly what: string,
    private readonly onFailure: (message: string) => void,
  ) {}

  request(body: Omit<Req, 'id'>): Promise<Ans> {
    return this.channel.request(body, this.what);
  }

  /** The id of the latest request (answers to older ones can be dropped by the caller). */
  get latestId(): number {
    return this.channel.latestId;
  }

  private start(): Promise<Worker> {
    this.worker ??= (async () => {
      const response = await fetch(this.url);
      if (!response.ok) throw new Error(`${this.what} script did not load (${response.status})`);
      const w = new Worker(URL.createObjectURL(new Blob([await response.text()], { type: 'text/javascript' })));
      w.onmessage = (e: MessageEvent<Ans>) => this.channel.answer(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        this.fail(`${this.what} failed: ${e.message || 'it stopped'}`);
      };
      w.onmessageerror = () => this.fail(`${this.what} sent a message that could not be read`);
      return w;
    })().catch((e: Error) => {
      this.fail(e.message);
      throw e;
    });
    return this.worker;
  }

  private fail(message: string): void {
    void this.worker?.then((w) => w.terminate()).catch(() => undefined);
    this.worker = undefined;
    this.channel.failAll(message);
    this.onFailure(`${message}; it restarts with the next request`);
  }
}
