import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { MemoryByteSource } from '../../src/engine/bytes';
import { InputError } from '../../src/engine/errors';
import type { OnnxTensor } from '../../src/engine/formats/onnx';
import { loadTensorBytes } from '../../src/engine/formats/onnx-data';
import { openModel } from '../../src/engine/formats/registry';
import { FileByteSource, FolderResolver } from '../../src/node/file-source';
import { inspectFile } from '../../src/node/inspect-file';
import { OUR_MODELS, PbWriter, REPO } from '../helpers';

const CLI = path.join(REPO, 'out', 'src', 'cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-bad-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const p = path.join(tmp, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, bytes);
  return p;
}

/** A valid little model built with onnx-proto's encoder: one MatMul with a weight. */
function tinyModel(weight: onnx.ITensorProto, extra: Partial<onnx.IGraphProto> = {}): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'test',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [{ opType: 'MatMul', input: ['x', weight.name!], output: ['y'], name: '/fc/MatMul' }],
      initializer: [weight],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 2 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
      ...extra,
    },
  }).finish();
}

async function expectInputError(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(inspectFile(file), (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${e}`);
    assert.ok(e.message.startsWith(file), `the message names the file: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bad input gets one clear error naming the file', () => {
  it('an empty file', () => expectInputError(write('empty.onnx', new Uint8Array(0)), /empty file/));
  it('a missing file', () => expectInputError(path.join(tmp, 'nope.onnx'), /no such file/));
  it('garbage bytes', () =>
    expectInputError(
      write(
        'garbage.onnx',
        Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff),
      ),
      // The first byte, 0x0d, is field 1 (ModelProto.ir_version, an integer) with wire type 5 (32-bit).
      /: wire type 5 where an integer was expected at offset 1$/,
    ));
  it('a PNG with an .onnx name (wrong magic)', () =>
    expectInputError(
      write(
        'image.onnx',
        Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]),
      ),
      /: is a PNG image, not an ONNX model$/,
    ));
  it('a PyTorch checkpoint (a ZIP archive) and a Git LFS pointer named .onnx / .safetensors', async () => {
    await expectInputError(
      write('torch.onnx', Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 0, 0])),
      /: is a ZIP archive \(PyTorch \.pt \/ \.pth checkpoints are ZIP archives\), not an ONNX model$/,
    );
    await expectInputError(
      write('lfs.safetensors', Buffer.from('version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 10\n')),
      /: is a Git LFS pointer \(git lfs pull fetches the file itself\), not a safetensors file$/,
    );
  });
  it('a truncated model', () => {
    const full = fs.readFileSync(path.join(OUR_MODELS, 'cnn-tiny.onnx'));
    return expectInputError(
      write('truncated.onnx', full.subarray(0, Math.floor(full.length * 0.6))),
      /truncated|past the end|ends at/,
    );
  });
  it('a length prefix past the end of the file', () =>
    expectInputError(
      write('length.onnx', new PbWriter().int(1, 8).tag(7, 2).varint(1e12).finish()),
      /past the end|truncated/,
    ));
  it('a varint that never ends', () =>
    expectInputError(write('varint.onnx', Uint8Array.from([0x08, ...new Array(12).fill(0xff)])), /varint|truncated/));
  it('a tensor declaring 10^15 elements', () =>
    expectInputError(
      write(
        'huge.onnx',
        tinyModel({ name: 'w', dims: [100000, 100000, 100000], dataType: 1, rawData: new Uint8Array(8) }),
      ),
      /declares 1000000000000000 elements/,
    ));
  it('a negative dimension', () =>
    expectInputError(
      write('negative.onnx', tinyModel({ name: 'w', dims: [-2, 2], dataType: 1, rawData: new Uint8Array(16) })),
      /negative dimension/,
    ));
  it('subgraphs nested a thousand deep', () => {
    let g: onnx.IGraphProto = { name: 'leaf' };
    for (let i = 0; i < 1000; i++) {
      g = {
        name: `g${i}`,
        node: [{ opType: 'If', input: ['c'], output: [`o${i}`], attribute: [{ name: 'then_branch', type: 5, g }] }],
      };
    }
    const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ version: 17 }], graph: g }).finish();
    return expectInputError(write('deep.onnx', bytes), /nested more than/);
  });
  it('external data that escapes the model folder', async () => {
    for (const location of ['../secret.bin', '/etc/passwd', 'a/../../secret.bin', 'C:\\Windows\\win.ini']) {
      const bytes = tinyModel({
        name: 'w',
        dims: [2, 2],
        dataType: 1,
        dataLocation: 1,
        externalData: [{ key: 'location', value: location }],
      });
      await expectInputError(write('escape/model.onnx', bytes), /escapes|absolute/);
    }
  });
  it('external data through a symlink that leaves the folder', async () => {
    write('outside.bin', new Uint8Array(16));
    fs.mkdirSync(path.join(tmp, 'link'), { recursive: true });
    fs.symlinkSync(path.join(tmp, 'outside.bin'), path.join(tmp, 'link', 'w.bin'));
    const bytes = tinyModel({
      name: 'w',
      dims: [2, 2],
      dataType: 1,
      dataLocation: 1,
      externalData: [{ key: 'location', value: 'w.bin' }],
    });
    await expectInputError(write('link/model.onnx', bytes), /outside the model's folder/);
  });
  it('external data that is missing or too short', async () => {
    const bytes = tinyModel({
      name: 'w',
      dims: [2, 2],
      dataType: 1,
      dataLocation: 1,
      externalData: [{ key: 'location', value: 'w.bin' }],
    });
    await expectInputError(write('missing/model.onnx', bytes), /does not exist/);
    write('short/w.bin', new Uint8Array(8));
    await expectInputError(write('short/model.onnx', bytes), /lies outside 'w.bin'/);
  });

  it('the CLI prints one line on stderr and exits 2', () => {
    const bad = write('cli-bad.onnx', Uint8Array.from([0x08, 0x08, 0x3a, 0xff, 0xff, 0x01]));
    for (const file of [bad, path.join(tmp, 'missing.onnx')]) {
      const r = runCli(['inspect', file, '--json']);
      assert.strictEqual(r.code, 2, r.stderr);
      assert.strictEqual(r.stdout, '');
      const lines = r.stderr.trim().split('\n');
      assert.strictEqual(lines.length, 1, r.stderr);
      assert.ok(lines[0].startsWith(file), lines[0]);
    }
    assert.strictEqual(runCli(['frobnicate']).code, 2);
  });
  it('the CLI prints the DESIGN.md JSON for a good model', () => {
    const r = runCli(['inspect', path.join(OUR_MODELS, 'cnn-tiny.onnx'), '--json']);
    assert.strictEqual(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    for (const key of [
      'format',
      'producer',
      'opsets',
      'nodes',
      'ops',
      'tensors',
      'parameters',
      'bytes',
      'dtypes',
      'layers',
    ]) {
      assert.ok(key in doc, key);
    }
    for (const l of doc.layers) assert.deepStrictEqual(Object.keys(l).sort(), ['flops', 'name', 'nodes', 'parameters']);
  });
});

describe('external data', () => {
  it('loads the same weights as the inline model', async () => {
    const load = async (name: string) => {
      const file = path.join(OUR_MODELS, name);
      const source = await FileByteSource.open(file);
      const siblings = new FolderResolver(file);
      const g = await openModel(source, { siblings });
      const out = new Map<string, Buffer>();
      for (const t of g.tensors.values()) {
        const ref = t.ref as { tensor: OnnxTensor } | undefined;
        if (t.isWeight && ref) out.set(t.name, Buffer.from(await loadTensorBytes(ref.tensor, source, siblings)));
      }
      await source.close();
      await siblings.close();
      return { out, g };
    };
    const inline = await load('gpt2-tiny.onnx');
    const external = await load('gpt2-tiny-external.onnx');
    assert.strictEqual(external.out.size, inline.out.size);
    let externalCount = 0;
    for (const [name, bytes] of inline.out) {
      assert.ok(external.out.get(name)!.equals(bytes), name);
      const ref = external.g.tensors.get(name)!.ref as { tensor: { data: { kind: string } } };
      if (ref.tensor.data.kind === 'external') externalCount++;
    }
    assert.ok(externalCount > 10, 'most weights live in the .data file');
  });

  it('parses a model over 2 GiB with positioned reads (sparse file, payload never read)', async function () {
    this.timeout(60000);
    // ModelProto { ir_version, opset, graph { node, initializer 'big' (float, 2^29+ elements, raw_data in a hole), input, output } }
    const elements = 600 * 1024 * 1024; // 2.4 GB of float32
    const payload = elements * 4;
    const tensorHead = new PbWriter()
      .tag(1, 2)
      .varint(new PbWriter().varint(elements).finish().length)
      .varint(elements)
      .int(2, 1)
      .string(8, 'big')
      .tag(9, 2)
      .varint(payload)
      .finish();
    const node = new PbWriter()
      .string(1, 'x')
      .string(1, 'big')
      .string(2, 'y')
      .string(3, '/fc/MatMul')
      .string(4, 'MatMul')
      .finish();
    const tail = new PbWriter().bytes(1, Array.from(node)).finish();
    const tensorLen = tensorHead.length + payload;
    const graphHead = new PbWriter().tag(5, 2).varint(tensorLen).finish();
    const graphLen = graphHead.length + tensorLen + tail.length;
    const head = new PbWriter().int(1, 8).message(8, new PbWriter().int(2, 17)).tag(7, 2).varint(graphLen).finish();
    const file = path.join(tmp, 'big.onnx');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(
      fd,
      Buffer.concat([head, graphHead, tensorHead]),
      0,
      head.length + graphHead.length + tensorHead.length,
      0,
    );
    fs.writeSync(fd, tail, 0, tail.length, head.length + graphHead.length + tensorHead.length + payload);
    fs.closeSync(fd);
    assert.ok(fs.statSync(file).size > 2 ** 31);
    const before = process.memoryUsage().rss;
    const r = await inspectFile(file);
    assert.strictEqual(r.parameters, elements);
    assert.strictEqual(r.bytes, payload);
    assert.strictEqual(r.nodes, 1);
    assert.ok(process.memoryUsage().rss - before < 256 * 1024 * 1024, 'the payload was not read into memory');
    fs.rmSync(file);
  });

  it('reads through the MemoryByteSource the webview and workers use', async () => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(OUR_MODELS, 'cnn-tiny.onnx')));
    const g = await openModel(new MemoryByteSource('cnn-tiny.onnx', bytes));
    assert.strictEqual(g.nodes.length, 7);
  });
});
