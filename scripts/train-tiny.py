#!/usr/bin/python3
"""Trains a small byte-level GPT on text Debian ships, on CPU, and writes it as ONNX, safetensors and GGUF.

Real trained weights for the quantization comparison in README.md ("Statistical grouping"): statistical
effects (channel magnitudes, outlier columns, non-uniform value distributions) appear only once weights
have learned something. Run with Debian's torch (apt-get install python3-torch python3-onnx):

    /usr/bin/python3 scripts/train-tiny.py OUT_DIR [--minutes 10] [--d 256] [--layers 4] [--seed 0]

Corpus: /usr/share/common-licenses and every /usr/share/doc/*/copyright file of the machine (deduplicated),
as bytes. Writes OUT_DIR/tiny-gpt.{onnx,safetensors,gguf} (float32 weights; the same values in all three)
and OUT_DIR/train-log.json (steps, loss curve, corpus size). Deterministic for a seed on one machine.
"""
import argparse
import glob
import hashlib
import json
import math
import os
import struct
import time

import numpy as np
import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('--minutes', type=float, default=10)
ap.add_argument('--d', type=int, default=256)
ap.add_argument('--layers', type=int, default=4)
ap.add_argument('--heads', type=int, default=4)
ap.add_argument('--ctx', type=int, default=128)
ap.add_argument('--batch', type=int, default=32)
ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--lr', type=float, default=2e-3)
ap.add_argument('--resume', help='a tiny-gpt.pt written by an earlier run: continue training it')
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
torch.manual_seed(args.seed)
np.random.seed(args.seed)
torch.set_num_threads(args.threads)

# Corpus: licences and copyright files, each distinct text once.
seen = set()
parts = []
for f in sorted(glob.glob('/usr/share/common-licenses/*')) + sorted(glob.glob('/usr/share/doc/*/copyright')):
    try:
        b = open(f, 'rb').read()
    except OSError:
        continue
    h = hashlib.sha1(b).hexdigest()
    if h in seen:
        continue
    seen.add(h)
    parts.append(b)
data = np.frombuffer(b'\n'.join(parts), dtype=np.uint8)
split = int(len(data) * 0.95)
train, valid = torch.from_numpy(data[:split].astype(np.int64)), torch.from_numpy(data[split:].astype(np.int64))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)
        self.heads = heads

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        hd = d // self.heads
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
        att = torch.softmax(att.masked_fill(~mask, float('-inf')), dim=-1)
        x = x + self.c_proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(nn.functional.gelu(self.mlp_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    def __init__(self, vocab, d, layers, heads, ctx):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t).unsqueeze(0))
        for blk in self.h:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


model = TinyGPT(256, args.d, args.layers, args.heads, args.ctx)
opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
done_before = 0
if args.resume and args.resume.endswith('.safetensors'):
    # Weights only (a run's safetensors output): the optimizer starts afresh.
    raw = open(args.resume, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    head = json.loads(raw[8 : 8 + n])
    model.load_state_dict(
        {
            k: torch.from_numpy(np.frombuffer(raw[8 + n + v['data_offsets'][0] : 8 + n + v['data_offsets'][1]], dtype=np.float32).reshape(v['shape']).copy())
            for k, v in head.items()
            if k != '__metadata__'
        }
    )
    done_before = int(json.load(open(os.path.join(os.path.dirname(args.resume), 'train-log.json')))['steps'])
elif args.resume:
    state = torch.load(args.resume)
    model.load_state_dict(state['model'])
    opt.load_state_dict(state['opt'])
    done_before = state['steps']


def batch(src):
    i = torch.randint(0, len(src) - args.ctx - 1, (args.batch,))
    x = torch.stack([src[j : j + args.ctx] for j in i])
    y = torch.stack([src[j + 1 : j + args.ctx + 1] for j in i])
    return x, y


def loss_on(src, n=8):
    model.eval()
    with torch.no_grad():
        tot = 0.0
        for _ in range(n):
            x, y = batch(src)
            tot += nn.functional.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1)).item()
    model.train()
    return tot / n


t0 = time.time()
log = []
step = 0
while time.time() - t0 < args.minutes * 60:
    x, y = batch(train)
    loss = nn.functional.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    step += 1
    if step % 100 == 0:
        v = loss_on(valid)
        log.append({'step': step, 'seconds': round(time.time() - t0, 1), 'train': round(loss.item(), 4), 'valid': round(v, 4)})
        print(log[-1], flush=True)

model.eval()
final = loss_on(valid, 32)
torch.save({'model': model.state_dict(), 'opt': opt.state_dict(), 'steps': done_before + step}, os.path.join(args.out, 'tiny-gpt.pt'))
json.dump(
    {
        'corpus': 'common-licenses + /usr/share/doc/*/copyright (distinct files)',
        'corpusBytes': int(len(data)),
        'steps': done_before + step,
        'seconds': round(time.time() - t0, 1),
        'validLossNats': round(final, 4),
        'validBitsPerByte': round(final / math.log(2), 4),
        'args': vars(args),
        'torch': torch.__version__,
        'log': log,
    },
    open(os.path.join(args.out, 'train-log.json'), 'w'),
    indent=1,
)

# ONNX (the exporter stores Linear weights transposed, as MatMul's B input).
name = 'tiny-gpt'
torch.onnx.export(
    model,
    (torch.randint(0, 256, (1, 16)),),
    os.path.join(args.out, f'{name}.onnx'),
    input_names=['input_ids'],
    output_names=['logits'],
    dynamic_axes={'input_ids': {0: 'batch', 1: 'sequence'}, 'logits': {0: 'batch', 1: 'sequence'}},
    opset_version=14,
)

# safetensors, Hugging Face GPT-2 names ([out, in] Linear weights as PyTorch stores them).
tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
header = {}
offset = 0
blobs = []
for k in sorted(tensors):
    a = np.ascontiguousarray(tensors[k])
    header[k] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + a.nbytes]}
    blobs.append(a.tobytes())
    offset += a.nbytes
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
with open(os.path.join(args.out, f'{name}.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))

# GGUF v3 (F32 tensors, llama.cpp's gpt2 tensor names; ggml dims are innermost first).
GGUF_NAMES = {
    'wte.weight': 'token_embd.weight',
    'wpe.weight': 'position_embd.weight',
    'ln_f.weight': 'output_norm.weight',
    'ln_f.bias': 'output_norm.bias',
    'lm_head.weight': 'output.weight',
}
PER_BLOCK = {
    'ln_1': 'attn_norm',
    'c_attn': 'attn_qkv',
    'c_proj': 'attn_output',
    'ln_2': 'ffn_norm',
    'mlp_fc': 'ffn_up',
    'mlp_proj': 'ffn_down',
}


def gguf_name(k):
    if k in GGUF_NAMES:
        return GGUF_NAMES[k]
    _, i, mod, kind = k.split('.')
    return f'blk.{i}.{PER_BLOCK[mod]}.{kind}'


def gstr(s):
    b = s.encode()
    return struct.pack('<Q', len(b)) + b


items = [(gguf_name(k), tensors[k]) for k in sorted(tensors)]
meta = gstr('general.architecture') + struct.pack('<I', 8) + gstr('gpt2')
out = [b'GGUF', struct.pack('<IQQ', 3, len(items), 1), meta]
rel = 0
for n, a in items:
    out.append(gstr(n) + struct.pack('<I', a.ndim) + b''.join(struct.pack('<Q', d) for d in reversed(a.shape)))
    out.append(struct.pack('<IQ', 0, rel))
    rel += a.nbytes + (-a.nbytes) % 32
head = b''.join(out)
head += b'\0' * ((-len(head)) % 32)
with open(os.path.join(args.out, f'{name}.gguf'), 'wb') as f:
    f.write(head)
    for _, a in items:
        f.write(a.tobytes() + b'\0' * ((-a.nbytes) % 32))
print(f'{step} steps, valid loss {final:.4f} nats ({final / math.log(2):.3f} bits/byte); wrote {args.out}')
