#!/usr/bin/env node
// The closing line of `npm test`: unit and integration counts together, as 'N passed, N failed'.
'use strict';
const fs = require('fs');
const read = (f) => JSON.parse(fs.readFileSync(`test-results/${f}`, 'utf8'));
const u = read('counts-unit.json');
const i = read('counts-integration.json');
console.log(`\ntests: ${u.passed + i.passed} passed, ${u.failed + i.failed} failed`);
