#!/usr/bin/python3
"""Writes test/fixtures/models/onnx-shape-inference.json: the shapes onnx's own shape inference gives
every value of the committed fixture models (onnx.shape_inference.infer_shapes, Debian's python3-onnx).

The fixtures carry no value_info, so this is the independent reference test/unit/shapes.test.ts
compares Layerplan's shape inference with. Run with /usr/bin/python3 scripts/make-shape-reference.py.
"""
import json
import os

import onnx
from onnx import shape_inference

MODELS = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'models')
out = {
    'source': f'onnx.shape_inference.infer_shapes (onnx {onnx.__version__}, Debian python3-onnx) on the models in this folder; '
    'dims are numbers, dim_params (the model\'s own names, or unk__N where onnx invents one), or null',
    'models': {},
}
for name in sorted(os.listdir(MODELS)):
    if not name.endswith('.onnx'):
        continue
    model = shape_inference.infer_shapes(onnx.load(os.path.join(MODELS, name), load_external_data=False))
    shapes = {}
    for v in list(model.graph.value_info) + list(model.graph.output):
        t = v.type.tensor_type
        if t.HasField('shape'):
            shapes[v.name] = [
                d.dim_value if d.HasField('dim_value') else (d.dim_param if d.HasField('dim_param') else None)
                for d in t.shape.dim
            ]
    out['models'][name] = shapes
with open(os.path.join(MODELS, 'onnx-shape-inference.json'), 'w') as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write('\n')
