import * as fs from 'fs';
import Mocha from 'mocha';
import * as path from 'path';
import { format } from 'util';

// The browser's console prints printf-style arguments unexpanded: hand it finished lines.
(Mocha.reporters.Base as unknown as { consoleLog: (...a: unknown[]) => void }).consoleLog = (...a: unknown[]) =>
  console.log(format(...a));

/** Entry point VS Code's extension host calls with extensionTestsPath: runs every *.itest.js here under mocha. */
export function run(): Promise<void> {
  // LAYERPLAN_GREP: run only the tests whose title matches (while working on them; npm test runs all).
  const grep = process.env.LAYERPLAN_GREP;
  const mocha = new Mocha({ ui: 'bdd', timeout: 60000, color: false, reporter: 'spec', ...(grep ? { grep } : {}) });
  for (const f of fs.readdirSync(__dirname)) if (f.endsWith('.itest.js')) mocha.addFile(path.join(__dirname, f));
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      // Pending (skipped) tests are neither passed nor failed: say how many.
      const stats = runner.stats ?? { passes: 0, pending: 0 };
      console.log(`integration: ${stats.passes} passed, ${failures} failed, ${stats.pending} skipped`);
      if (failures) reject(new Error(`${failures} integration tests failed`));
      else resolve();
    });
  });
}
