#!/usr/bin/env node
// Writes schemas/plan.schema.json from the plan's field table (src/engine/plan/fields.ts), so the
// schema VS Code completes and hovers with is the one validatePlan checks. Needs the compiled engine
// (tsc); `--check` fails when the committed schema differs (npm run compile runs it).
'use strict';
const fs = require('fs');
const path = require('path');

const { PLAN_FIELDS } = require('../out/src/engine/plan/plan.js');
const { toJsonSchema } = require('../out/src/engine/plan/fields.js');

const schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Layerplan plan',
  ...toJsonSchema(PLAN_FIELDS),
};
const text = JSON.stringify(schema, null, 2) + '\n';
const file = path.join(__dirname, '..', 'schemas', 'plan.schema.json');
if (process.argv.includes('--check')) {
  if (fs.readFileSync(file, 'utf8') !== text) {
    console.error(
      `${path.relative(process.cwd(), file)} is out of date with src/engine/plan/fields.ts: run npm run gen:plan-schema`,
    );
    process.exit(1);
  }
} else {
  fs.writeFileSync(file, text);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
