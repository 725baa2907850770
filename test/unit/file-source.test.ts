import * as assert from 'assert';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FileByteSource, FolderResolver } from '../../src/node/file-source';

describe('files on disk (src/node/file-source.ts)', () => {
  let tmp: string;
  let file: string;
  let bytes: Buffer;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-files-'));
    file = path.join(tmp, 'data.bin');
    bytes = crypto.randomBytes(4 << 20);
    fs.writeFileSync(file, bytes);
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('close() waits for the reads in flight, then refuses reads; closing twice is one close', async () => {
    const source = await FileByteSource.open(file);
    const reading = source.read(0, bytes.length);
    const closing = source.close();
    assert.ok(Buffer.from(await reading).equals(bytes), 'the read in flight got the whole file');
    await closing;
    await source.close();
    assert.throws(() => source.readSync(0, 1), /closed/);
    await assert.rejects(source.read(0, 1), /closed/);
  });

  it('a resolver closed while an open is under way closes that file too (no descriptor left open)', async () => {
    const resolver = new FolderResolver(path.join(tmp, 'model.onnx'));
    const opening = resolver.open('data.bin', 'external-data');
    await resolver.close();
    const opened = await opening;
    assert.throws(() => opened.readSync(0, 1), /closed/);
  });

  it('reads outside the file, and files that are not regular files, are errors naming the file', async () => {
    const source = await FileByteSource.open(file);
    try {
      assert.throws(
        () => source.readSync(bytes.length - 1, 2),
        (e: Error) => e.message.includes(file),
      );
    } finally {
      await source.close();
    }
    await assert.rejects(FileByteSource.open(tmp), (e: Error) => e.message.includes(tmp));
    await assert.rejects(FileByteSource.open(path.join(tmp, 'none.bin')), /no such file/);
  });
});
