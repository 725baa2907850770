#!/usr/bin/env python3
"""An independent check of exported launch configurations against the frameworks' option lists.

Usage: framework_options.py megatron <megatron-args.json> <argv.json>
       framework_options.py deepspeed-launcher <deepspeed-config.json> <argv.json>
       framework_options.py torchtitan <torchtitan-config.json> <config.toml>

Megatron and the deepspeed launcher: Python's own argparse, built from the option list (flags, action, type,
choices, nargs; allow_abbrev=False as Megatron-LM sets it) parses the arguments, as the frameworks'
parse_args() would; torchtitan: Python's tomllib reads the TOML and every table and key is looked up in the
JobConfig field list with its type and Literal choices, as torchtitan's ConfigManager would reject it.
Prints one JSON object: {"ok": bool, "error": str, "parsed": {...}}.
"""
import argparse
import json
import sys
import tomllib


class Fail(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Fail(message)


def build(arguments, prog):
    p = Parser(prog=prog, allow_abbrev=False, add_help=False)
    for a in arguments:
        if a.get('positional'):
            continue
        kw = {'dest': a['dest']}
        action = a['action']
        if action in ('store_true', 'store_false'):
            kw['action'] = action
        elif action == 'BooleanOptionalAction':
            kw['action'] = argparse.BooleanOptionalAction
            # argparse adds the --no- spelling itself
            flags = [f for f in a['flags'] if not f.startswith('--no-')]
            p.add_argument(*flags, **kw)
            continue
        else:
            t = a.get('type')
            kw['type'] = {'int': int, 'float': float}.get(t, str)
            if a.get('choices') is not None:
                kw['choices'] = [kw['type'](c) if t in ('int', 'float') else c for c in a['choices']]
            if a.get('nargs') not in (None, 0):
                n = a['nargs']
                kw['nargs'] = int(n) if isinstance(n, int) or (isinstance(n, str) and n.isdigit()) else n
        p.add_argument(*a['flags'], **kw)
    return p


def megatron(options, argv):
    spec = json.load(open(options))
    parser = build(spec['arguments'], 'pretrain_gpt.py')
    ns = parser.parse_args(argv)
    return {k: v for k, v in vars(ns).items() if v is not None}


def deepspeed_launcher(options, argv):
    spec = json.load(open(options))
    parser = build(spec['launcher']['options'], 'deepspeed')
    parser.add_argument('user_script', type=str)
    parser.add_argument('user_args', nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    return {k: v for k, v in vars(ns).items() if v is not None}


def torchtitan(options, toml_file):
    spec = json.load(open(options))
    with open(toml_file, 'rb') as f:
        doc = tomllib.load(f)
    tables = {}

    def walk(section, name):
        fields = {}
        tables[name] = fields
        for fl in section['fields']:
            if 'section' in fl:
                walk(fl['section'], name + '.' + fl['key'])
                fields[fl['key']] = 'table'
            else:
                fields[fl['key']] = fl

    for name, s in spec['sections'].items():
        walk(s, name)

    def check_value(path, fl, v):
        t = fl['type']
        base = t.replace(' | None', '')
        ok = {
            'int': isinstance(v, int) and not isinstance(v, bool),
            'float': isinstance(v, (int, float)) and not isinstance(v, bool),
            'float | int': isinstance(v, (int, float)) and not isinstance(v, bool),
            'bool': isinstance(v, bool),
            'str': isinstance(v, str),
            'list[str]': isinstance(v, list) and all(isinstance(x, str) for x in v),
            'list[str] | str': isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
            'list[list[str]]': isinstance(v, list) and all(isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v),
        }.get(base)
        if base.startswith('Literal['):
            ok = isinstance(v, str) and v in fl['choices']
        if ok is None:
            raise Fail(f'{path}: type {t} not handled by this check')
        if not ok:
            raise Fail(f'{path}: {v!r} is not a {t}')
        if fl.get('choices') and not base.startswith('Literal[') and v not in fl['choices']:
            raise Fail(f'{path}: {v!r} is not one of {fl["choices"]}')

    def visit(obj, name):
        fields = tables.get(name)
        if fields is None:
            raise Fail(f'[{name}] is not a JobConfig section')
        for k, v in obj.items():
            fl = fields.get(k)
            if fl is None:
                raise Fail(f'{name}.{k} is not a field of [{name}]')
            if fl == 'table':
                if not isinstance(v, dict):
                    raise Fail(f'{name}.{k} must be a table')
                visit(v, name + '.' + k)
            else:
                check_value(f'{name}.{k}', fl, v)

    for k, v in doc.items():
        if not isinstance(v, dict):
            raise Fail(f'{k}: top-level keys must be tables')
        visit(v, k)
    return doc


def main():
    kind, options, arg = sys.argv[1:4]
    try:
        if kind == 'megatron':
            parsed = megatron(options, json.load(open(arg)))
        elif kind == 'deepspeed-launcher':
            parsed = deepspeed_launcher(options, json.load(open(arg)))
        else:
            parsed = torchtitan(options, arg)
        print(json.dumps({'ok': True, 'parsed': parsed}, default=str))
    except Fail as e:
        print(json.dumps({'ok': False, 'error': str(e)}))


main()
