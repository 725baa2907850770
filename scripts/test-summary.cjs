#!/usr/bin/env node
// The closing line of `npm test`: unit and every integration run's counts together, as
// 'N passed, N failed, N skipped' (a skipped test is neither: it is said, not hidden).
'use strict';
const fs = require('fs');
const files = fs.readdirSync('test-results').filter((f) => /^counts-.*\.json$/.test(f));
let passed = 0;
let failed = 0;
let skipped = 0;
for (const f of files) {
  const c = JSON.parse(fs.readFileSync(`test-results/${f}`, 'utf8'));
  passed += c.passed;
  failed += c.failed;
  skipped += c.skipped ?? 0;
}
if (!files.some((f) => f.startsWith('counts-unit'))) failed++;
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed ? 1 : 0;
