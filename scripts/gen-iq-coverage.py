#!/usr/bin/python3
"""Writes test/fixtures/ggml-iq-coverage.json: gguf-py's decoding of many pseudo-random IQ blocks, as a SHA-256.

The value-for-value fixture (ggml-iq-blocks.json) has 4 blocks per type, which touch about 128 grid entries of
256-2048. This one decodes 1,024 blocks per type (32,768 grid draws: 16 to 128 per entry on average) with gguf-py's own numpy
dequantizers, whose grids are a separate encoding (grid_hex) of the same ggml-common.h tables, and records the
SHA-256 of the float32 output; the test rebuilds the same bytes and compares the hash of Layerplan's decoding.

Bytes: a 32-bit LCG (s = s * 1664525 + 1013904223 mod 2^32, byte = s >> 24), seeded 19 + type id, then the fp16
scale d = 0.5 (0x3800) written where the type keeps it (IQ1_M: the top nibbles of its four scale words).

    /usr/bin/python3 scripts/gen-iq-coverage.py GGUF_PY_DIR > test/fixtures/ggml-iq-coverage.json
GGUF_PY_DIR holds gguf/{__init__,quants,constants,lazy}.py of llama.cpp's gguf-py (commit c392e509, tag b4747, MIT).
"""
import hashlib, json, sys
import numpy as np

sys.path.insert(0, sys.argv[1])
from gguf import quants  # noqa: E402
from gguf.constants import GGMLQuantizationType as T, GGML_QUANT_SIZES  # noqa: E402

BLOCKS = 1024
TYPES = ['IQ2_XXS', 'IQ2_XS', 'IQ2_S', 'IQ3_XXS', 'IQ3_S', 'IQ1_S', 'IQ1_M']
D = 0x3800


def blocks(tname):
    qt = T[tname]
    bs = GGML_QUANT_SIZES[qt][1]
    s = 19 + int(qt)
    out = bytearray()
    for _ in range(BLOCKS):
        b = bytearray(bs)
        for i in range(bs):
            s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
            b[i] = s >> 24
        if tname == 'IQ1_M':
            for k in range(4):
                b[49 + 2 * k] = (b[49 + 2 * k] & 0x0F) | (((D >> (4 * k)) & 0xF) << 4)
        else:
            b[0], b[1] = D & 0xFF, D >> 8
        out += b
    return bytes(out)


result = {
    'source': 'gguf-py/gguf/quants.py of llama.cpp (ggml-org/llama.cpp, formerly ggerganov/llama.cpp), commit c392e5094deaf2d1a7c18683214f007fad3fe42b (tag b4747), MIT; run unmodified with numpy ' + np.__version__ + ' by scripts/gen-iq-coverage.py',
    'recipe': {'blocks': BLOCKS, 'lcg': 's = s * 1664525 + 1013904223 mod 2^32; byte = s >> 24', 'seed': '19 + ggml type id', 'd': D},
    'types': {},
}
for t in TYPES:
    raw = blocks(t)
    y = quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(1, -1), T[t]).reshape(-1).astype(np.float32)
    assert np.all(np.isfinite(y))
    result['types'][t] = {'id': int(T[t]), 'sha256': hashlib.sha256(y.tobytes()).hexdigest(), 'values': int(y.size), 'sum': float(np.sum(y.astype(np.float64)))}
print(json.dumps(result, indent=1))
