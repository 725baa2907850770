import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
/** The fixture with the longest `inspect --json` (4.3 KB): more than the one-page pipe below holds. */
const MODEL = path.join(ROOT, 'test', 'fixtures', 'external', 'ort_TFBertForQuestionAnswering.onnx');

/**
 * Runs the CLI with its stdout on a pipe that Python sets up as a test needs (Node cannot make a
 * non-blocking pipe or shrink one); prints a JSON line: the exit code, stderr, and what came through.
 */
const HARNESS = String.raw`
import fcntl, json, os, subprocess, sys, termios, time, array
mode, node, cli = sys.argv[1:4]
args = sys.argv[4:]
r, w = os.pipe()
if mode == 'closed':
    os.close(r)
    p = subprocess.run([node, cli, *args], stdout=w, stderr=subprocess.PIPE)
    print(json.dumps({'status': p.returncode, 'stderr': p.stderr.decode(), 'out': ''}))
    sys.exit(0)
# A one-page pipe the writer may not block on: the CLI's write fills it, then meets EAGAIN.
fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
p = subprocess.Popen([node, cli, *args], stdout=w, stderr=subprocess.PIPE)
os.close(w)
full = False
deadline = time.time() + 60
while time.time() < deadline and p.poll() is None:
    n = array.array('i', [0])
    fcntl.ioctl(r, termios.FIONREAD, n)
    if n[0] >= 4096:
        full = True
        break
    time.sleep(0.01)
out = b''
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    out += chunk
p.wait()
print(json.dumps({'status': p.returncode, 'stderr': p.stderr.read().decode(), 'out': out.decode(), 'full': full}))
`;

interface Run {
  status: number;
  stderr: string;
  out: string;
  full?: boolean;
}

function harness(mode: 'closed' | 'nonblocking', ...args: string[]): Run {
  const r = spawnSync('python3', ['-c', HARNESS, mode, process.execPath, CLI, ...args], { encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Run;
}

describe("the command line's stdout (src/cli/command.ts out)", () => {
  before(function () {
    if (!fs.existsSync(CLI) || spawnSync('python3', ['-c', 'import fcntl; fcntl.F_SETPIPE_SZ']).status !== 0) {
      this.skip();
    }
  });

  it('a reader that is already gone (EPIPE) is no error: the command ends as it would, with its own exit code', () => {
    const r = harness('closed', 'inspect', MODEL, '--json');
    assert.deepStrictEqual({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' });
    // A check that finds errors still exits 1 (it printed them, to a reader that was gone).
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-stdout-'));
    try {
      const plan = path.join(tmp, 'over.plan.json');
      fs.writeFileSync(
        plan,
        JSON.stringify({
          model: { arch: 'gpt', layers: 48, hidden: 8192, heads: 64, vocab: 51200, seqLen: 2048 },
          cluster: { gpu: 'a100-40gb', gpusPerNode: 2, nodes: 1 },
          training: { globalBatch: 8, microBatch: 1, seqLen: 2048, recompute: 'full' },
          parallel: { data: 1, tensor: 1, pipeline: 2 },
          stages: [{ layers: '0-23' }, { layers: '24-47' }],
        }),
      );
      const plain = spawnSync(process.execPath, [CLI, 'check', plan], { encoding: 'utf8' });
      assert.strictEqual(plain.status, 1, plain.stderr);
      const gone = harness('closed', 'check', plan);
      assert.deepStrictEqual({ status: gone.status, stderr: gone.stderr }, { status: 1, stderr: '' });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a non-blocking pipe that fills up (EAGAIN) still gets the whole report, in order', () => {
    const plain = spawnSync(process.execPath, [CLI, 'inspect', MODEL, '--json'], { encoding: 'utf8' });
    assert.strictEqual(plain.status, 0, plain.stderr);
    assert.ok(plain.stdout.length > 4096, 'the report is longer than the pipe holds');
    const r = harness('nonblocking', 'inspect', MODEL, '--json');
    assert.strictEqual(r.full, true, 'the CLI filled the pipe before anything was read');
    assert.deepStrictEqual({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' });
    assert.strictEqual(r.out, plain.stdout);
  });
});
