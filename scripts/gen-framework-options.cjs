#!/usr/bin/env node
// Writes src/engine/check/launch/options.generated.ts from the training frameworks' option lists in
// test/fixtures/frameworks/ (extracted from their sources at a named release; README.md there says how):
// Megatron-LM's argparse flags, DeepSpeed's config keys and launcher flags, torchtitan's TOML fields, as
// compact tables the import checks and the exporters use. `--check` fails when the committed file differs
// (npm run compile runs it).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const dir = path.join(root, 'test', 'fixtures', 'frameworks');
const read = (name) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));

// ---- Megatron-LM: flag → [value kind, choices, nargs, dest, default]
const megatron = read('megatron-args.json');
const flags = {};
for (const a of megatron.arguments) {
  const isFlag = a.action === 'store_true' || a.action === 'store_false' || a.nargs === 0;
  let kind = isFlag ? 'flag' : ['int', 'float', 'str'].includes(a.type) ? a.type : 'any';
  if (a.type === null && !isFlag) kind = 'str';
  const entry = [kind, a.choices ?? null, a.nargs === null || a.nargs === 0 ? null : String(a.nargs), a.dest];
  const d = a.default;
  if (a.action === 'BooleanOptionalAction') {
    // --x sets true, --no-x false: the dest's value depends on which spelling was used.
    for (const f of a.flags) flags[f] = ['flag', null, null, a.dest, !f.startsWith('--no-'), a.default ?? null];
    continue;
  }
  const value = a.action === 'store_true' ? true : a.action === 'store_false' ? false : undefined;
  const dflt = d === null || typeof d === 'object' ? null : d;
  for (const f of a.flags)
    flags[f] = [...entry, value === undefined ? dflt : value, value === undefined ? null : !value];
}

// ---- DeepSpeed: key → kind (top level), pydantic sections with their fields.
const ds = read('deepspeed-config.json');
function dsKind(type) {
  const t = String(type);
  let m;
  if ((m = /^enum \w+: (.*)$/.exec(t))) {
    return { k: 'enum', c: m[1].split('|').map((v) => (/^'.*'$/.test(v) ? v.slice(1, -1) : Number(v))) };
  }
  if ((m = /^str ([\w|]+)$/.exec(t)) && m[1].includes('|')) return { k: 'enum', c: m[1].split('|') };
  if (/^(Optional\[)?int\]?$/.test(t)) return { k: 'int' };
  if (/^(Optional\[)?float\]?$/.test(t)) return { k: 'number' };
  if (/^(Optional\[)?bool\]?$/.test(t)) return { k: 'bool' };
  if (/^int \| "auto"$/.test(t)) return { k: 'int', auto: true };
  if (/^(Optional\[)?str\]?$|^str\b|Path/.test(t)) return { k: 'str' };
  if (/^object|Dict|Config\]?$|^Optional\[deepspeed|^DeepSpeed/.test(t)) return { k: 'object' };
  return { k: 'any' };
}
function dsFields(section) {
  const out = {};
  for (const f of section.fields ?? []) {
    const e = dsKind(f.type);
    if (f.constraints?.ge !== undefined) e.ge = f.constraints.ge;
    if (f.constraints?.le !== undefined) e.le = f.constraints.le;
    if (f.default !== undefined && (f.default === null || typeof f.default !== 'object')) e.d = f.default;
    if (f.deprecation?.deprecated) e.deprecated = f.deprecation.new_param ?? true;
    if (f.section) e.fields = dsFields(f.section);
    out[f.key] = e;
    if (f.also_accepted_as) out[f.also_accepted_as] = { ...e, aliasOf: f.key };
  }
  return out;
}
const dsTop = {};
for (const k of ds.top_level_keys) {
  const e = dsKind(k.type);
  if (k.default !== undefined && (k.default === null || typeof k.default !== 'object')) e.d = k.default;
  dsTop[k.key] = e;
}
// Pydantic models (DeepSpeedConfigModel, extra="forbid"): an unknown key inside is an error.
const strict = new Set(['zero_optimization', 'bf16', 'fp16', 'tensor_parallel']);
const dsSections = {};
for (const [name, s] of Object.entries(ds.sections)) {
  dsSections[name] = { strict: strict.has(name), fields: dsFields(s) };
}
const launcher = {};
for (const o of ds.launcher.options) {
  if (o.positional) continue;
  const kind = o.action === 'store_true' || o.action === 'store_false' ? 'flag' : o.type === 'int' ? 'int' : 'str';
  for (const f of o.flags) launcher[f] = [kind, o.dest];
}

// ---- torchtitan: "section.sub" → field → [kind, choices, default]
const tt = read('torchtitan-config.json');
const ttTables = {};
function ttKind(type) {
  const t = String(type);
  let m;
  if ((m = /^Literal\[(.*)\]( \| None)?$/.exec(t))) {
    return ['enum', m[1].split(',').map((v) => v.trim().replace(/^'(.*)'$/, '$1'))];
  }
  if (/^int( \| None)?$/.test(t)) return ['int', null];
  if (/^float( \| None)?$|^float \| int$/.test(t)) return ['number', null];
  if (t === 'bool') return ['bool', null];
  if (/^str( \| None)?$/.test(t)) return ['str', null];
  if (t === 'list[str]') return ['strings', null];
  if (t === 'list[str] | str') return ['strings|str', null];
  if (/^list\[list\[str\]\]/.test(t)) return ['stringLists', null];
  return ['any', null];
}
function ttWalk(section, name) {
  const fields = {};
  ttTables[name] = fields;
  for (const f of section.fields) {
    if (f.section) {
      ttWalk(f.section, `${name}.${f.key}`);
      fields[f.key] = ['table', null, null];
      continue;
    }
    const [k, c] = ttKind(f.type);
    const choices = f.choices ?? c;
    const d =
      f.default === undefined || (f.default !== null && typeof f.default === 'object' && !Array.isArray(f.default))
        ? null
        : f.default;
    fields[f.key] = [k, choices, d];
  }
}
for (const [name, s] of Object.entries(tt.sections)) ttWalk(s, name);
// Pipeline schedules: names torch.distributed.pipelining.schedules.get_schedule_class accepts (case-insensitive).
const schedules = tt.sections.parallelism.fields.find((f) => f.key === 'pipeline_parallel_schedule').choices;
// Model converters registered with register_model_converter (the names model.converters accepts).
const converters = tt.sections.model.fields.find((f) => f.key === 'converters').registered_values;

const src = (s) => `${s.repository} ${s.git_tag} (${s.commit})`;
const text = `// Generated by scripts/gen-framework-options.cjs from test/fixtures/frameworks/*.json: do not edit.
// Sources: ${src(megatron.source)}; ${src(ds.source)}; ${src(tt.source)}.
/* eslint-disable */
import type { DeepSpeedField, MegatronFlag, TorchtitanField } from './options';

export const MEGATRON_VERSION = ${JSON.stringify(`Megatron-LM ${megatron.source.git_tag}`)};
export const MEGATRON_COMMIT = ${JSON.stringify(megatron.source.commit)};
export const DEEPSPEED_VERSION = ${JSON.stringify(`DeepSpeed ${ds.source.git_tag}`)};
export const DEEPSPEED_COMMIT = ${JSON.stringify(ds.source.commit)};
export const TORCHTITAN_VERSION = ${JSON.stringify(`torchtitan ${tt.source.git_tag}`)};
export const TORCHTITAN_COMMIT = ${JSON.stringify(tt.source.commit)};

export interface FrameworkOptions {
  /**
   * Every flag of megatron/training/arguments.py: [value kind, choices, nargs, dest, default] for flags that take a
   * value; ['flag', null, null, dest, the value it sets, default] for store_true / store_false / --x/--no-x.
   */
  MEGATRON_FLAGS: Record<string, MegatronFlag>;
  DEEPSPEED_TOP: Record<string, DeepSpeedField>;
  DEEPSPEED_SECTIONS: Record<string, { strict: boolean; fields: Record<string, DeepSpeedField> }>;
  /** The deepspeed launcher's flags (launcher/runner.py parse_args): [kind, dest]. */
  DEEPSPEED_LAUNCHER: Record<string, ['flag' | 'int' | 'str', string]>;
  /** Every TOML table of JobConfig and its fields: [kind, choices, default]. */
  TORCHTITAN_TABLES: Record<string, Record<string, TorchtitanField>>;
  TORCHTITAN_SCHEDULES: string[];
  TORCHTITAN_CONVERTERS: string[];
}

let parsed: FrameworkOptions | undefined;

/**
 * The tables, parsed on first use: as an object literal evaluated when the module loads, the 90 KB
 * cost every start of the command line ~2.5 ms, though only the launch checks read them.
 */
export function frameworkOptions(): FrameworkOptions {
  return (parsed ??= JSON.parse(${JSON.stringify(
    JSON.stringify({
      MEGATRON_FLAGS: flags,
      DEEPSPEED_TOP: dsTop,
      DEEPSPEED_SECTIONS: dsSections,
      DEEPSPEED_LAUNCHER: launcher,
      TORCHTITAN_TABLES: ttTables,
      TORCHTITAN_SCHEDULES: schedules,
      TORCHTITAN_CONVERTERS: converters,
    }),
  )}) as FrameworkOptions);
}
`;

const out = path.join(root, 'src', 'engine', 'check', 'launch', 'options.generated.ts');
if (process.argv.includes('--check')) {
  if (!fs.existsSync(out) || fs.readFileSync(out, 'utf8') !== text) {
    console.error(`${path.relative(process.cwd(), out)} is out of date: run node scripts/gen-framework-options.cjs`);
    process.exit(1);
  }
} else {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, text);
  console.log(`wrote ${path.relative(process.cwd(), out)} (${text.length} bytes)`);
}
