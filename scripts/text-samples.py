#!/usr/bin/python3
"""Calibration samples for `layerplan verify --inputs` / `quant --activations --inputs` on the model train-tiny.py
writes: byte sequences from the held-out 5% of its corpus, as ONNX test-data sets (test_data_set_<k>/input_0.pb,
an int64 TensorProto input_ids [1, LEN]).

    /usr/bin/python3 scripts/text-samples.py OUT_DIR [--sets 8] [--len 64]
"""
import argparse, glob, hashlib, os
import numpy as np
from onnx import numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('--sets', type=int, default=8)
ap.add_argument('--len', type=int, default=64)
args = ap.parse_args()
seen, parts = set(), []
for f in sorted(glob.glob('/usr/share/common-licenses/*')) + sorted(glob.glob('/usr/share/doc/*/copyright')):
    try:
        b = open(f, 'rb').read()
    except OSError:
        continue
    h = hashlib.sha1(b).hexdigest()
    if h not in seen:
        seen.add(h)
        parts.append(b)
data = np.frombuffer(b'\n'.join(parts), dtype=np.uint8)
valid = data[int(len(data) * 0.95):]
step = (len(valid) - args.len) // args.sets
for k in range(args.sets):
    d = os.path.join(args.out, f'test_data_set_{k}')
    os.makedirs(d, exist_ok=True)
    ids = valid[k * step : k * step + args.len].astype(np.int64).reshape(1, -1)
    t = numpy_helper.from_array(ids, name='input_ids')
    open(os.path.join(d, 'input_0.pb'), 'wb').write(t.SerializeToString())
print(f'{args.sets} sets of {args.len} bytes in {args.out}')
