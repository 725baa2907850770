import * as fs from 'fs';
import Mocha from 'mocha';
import * as path from 'path';
import { format } from 'util';

// The browser's console prints printf-style arguments unexpanded: hand it finished lines.
(Mocha.reporters.Base as unknown as { consoleLog: (...a: unknown[]) => void }).consoleLog = (...a: unknown[]) => console.log(format(...a));

/** Entry point VS Code's extension host calls with extensionTestsPath: runs every *.itest.js here under mocha. */
export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 60000, color: false, reporter: 'spec' });
  for (const f of fs.readdirSync(__dirname)) if (f.endsWith('.itest.js')) mocha.addFile(path.join(__dirname, f));
  return new Promise((resolve, reject) => {
    mocha.run((failures) => {
      console.log(`integration: ${mocha.suite.total() - failures} passed, ${failures} failed`);
      if (failures) reject(new Error(`${failures} integration tests failed`));
      else resolve();
    });
  });
}
