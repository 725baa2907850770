#!/usr/bin/python3
"""Exports the small real models under test/fixtures/models with Debian's python3-torch and python3-onnx.

Run with /usr/bin/python3 scripts/make-fixtures.py (apt-get install python3-torch python3-onnx).
The outputs are committed; this toolchain is not needed to run the tests.
"""
import os
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'models')
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
np.random.seed(0)


class Block(nn.Module):
    def __init__(self, d, heads, causal):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True) if not causal else None
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)
        self.heads = heads
        self.causal = causal

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln_1(x)
        q, k, v = self.c_attn(h).split(d, dim=2)
        hd = d // self.heads
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.heads, hd).transpose(1, 2)
        v = v.view(b, t, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / (hd ** 0.5)
        if self.causal:
            mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
            att = att.masked_fill(~mask, float('-inf'))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(y)
        x = x + self.mlp_proj(nn.functional.gelu(self.mlp_fc(self.ln_2(x))))
        return x


class TinyGPT(nn.Module):
    """GPT-2 shaped: token + position embeddings, pre-LN blocks named h.N, tied lm_head."""
    def __init__(self, vocab=256, d=64, layers=2, heads=4, ctx=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList([Block(d, heads, True) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class TinyBERT(nn.Module):
    """BERT shaped: embeddings + post-LN encoder layers named encoder.layer.N, pooler."""
    def __init__(self, vocab=200, d=48, layers=2, heads=4, ctx=32):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(ctx, d)
        self.layer = nn.ModuleList([Block(d, heads, False) for _ in range(layers)])
        self.pooler = nn.Linear(d, d)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)
        for layer in self.layer:
            x = layer(x)
        return torch.tanh(self.pooler(x[:, 0]))


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def export(model, args, name, inputs, outputs, dynamic):
    model.eval()
    # Trained-looking norms: torch's exporter merges identical initializers (fresh LayerNorms are all ones).
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.LayerNorm, nn.BatchNorm2d)):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    path = os.path.join(OUT, name)
    torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dynamic, opset_version=14)
    print('wrote', path, os.path.getsize(path))
    return path


class TinyRNN(nn.Module):
    """An LSTM encoder and a bidirectional GRU: ONNX LSTM / GRU ops."""
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.gru = nn.GRU(32, 24, batch_first=True, bidirectional=True)
        self.head = nn.Linear(48, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        z, _ = self.gru(y)
        return self.head(z[:, -1])


gpt = TinyGPT()
ids = torch.randint(0, 256, (1, 16))
export(gpt, (ids,), 'gpt2-tiny.onnx', ['input_ids'], ['logits'], {'input_ids': {0: 'batch', 1: 'sequence'}, 'logits': {0: 'batch', 1: 'sequence'}})
export(TinyBERT(), (torch.randint(0, 200, (1, 12)),), 'bert-tiny.onnx', ['input_ids'], ['pooled'], {'input_ids': {0: 'batch', 1: 'sequence'}, 'pooled': {0: 'batch'}})
export(TinyCNN(), (torch.randn(1, 3, 32, 32),), 'cnn-tiny.onnx', ['image'], ['logits'], {'image': {0: 'batch'}, 'logits': {0: 'batch'}})

export(TinyRNN(), (torch.randn(2, 10, 16),), 'rnn-tiny.onnx', ['x'], ['y'], {'x': {0: 'batch', 1: 'sequence'}, 'y': {0: 'batch'}})

# The same GPT with its weights in an external data file beside the model.
m = onnx.load(os.path.join(OUT, 'gpt2-tiny.onnx'))
onnx.save_model(m, os.path.join(OUT, 'gpt2-tiny-external.onnx'), save_as_external_data=True, all_tensors_to_one_file=True,
                location='gpt2-tiny-external.onnx.data', size_threshold=256)
print('wrote gpt2-tiny-external.onnx (+ .data)')

# A QDQ-quantized two-layer MLP: int8 per-channel weights (axis 0 of [out, in] after transpose), uint8 activations.
x = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', 32])
y = helper.make_tensor_value_info('y', TensorProto.FLOAT, ['batch', 16])
w1 = np.random.randn(32, 64).astype(np.float32) * 0.1
w2 = np.random.randn(64, 16).astype(np.float32) * 0.1
inits, nodes = [], []
def qdq_weight(name, w):
    scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    inits.extend([numpy_helper.from_array(q, f'{name}.weight_quantized'), numpy_helper.from_array(scale, f'{name}.weight_scale'),
                  numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f'{name}.weight_zero_point')])
    nodes.append(helper.make_node('DequantizeLinear', [f'{name}.weight_quantized', f'{name}.weight_scale', f'{name}.weight_zero_point'], [f'{name}.weight'], name=f'/{name}/DequantizeLinear_w', axis=1))
def qdq_act(name, t):
    inits.extend([numpy_helper.from_array(np.array(0.02, np.float32), f'{name}.scale'), numpy_helper.from_array(np.array(128, np.uint8), f'{name}.zero_point')])
    nodes.append(helper.make_node('QuantizeLinear', [t, f'{name}.scale', f'{name}.zero_point'], [f'{name}_q'], name=f'/{name}/QuantizeLinear'))
    nodes.append(helper.make_node('DequantizeLinear', [f'{name}_q', f'{name}.scale', f'{name}.zero_point'], [f'{name}_dq'], name=f'/{name}/DequantizeLinear'))
    return f'{name}_dq'
qdq_weight('fc1', w1)
qdq_weight('fc2', w2)
a = qdq_act('fc1_in', 'x')
nodes.append(helper.make_node('MatMul', [a, 'fc1.weight'], ['h'], name='/fc1/MatMul'))
nodes.append(helper.make_node('Relu', ['h'], ['h_relu'], name='/act/Relu'))
b = qdq_act('fc2_in', 'h_relu')
nodes.append(helper.make_node('MatMul', [b, 'fc2.weight'], ['y'], name='/fc2/MatMul'))
g = helper.make_graph(nodes, 'qdq_mlp', [x], [y], inits)
qm = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)], producer_name='layerplan-fixtures')
onnx.checker.check_model(qm)
onnx.save(qm, os.path.join(OUT, 'qdq-mlp.onnx'))
print('wrote qdq-mlp.onnx')

# Control flow: an If whose branches hold initializers and a Loop whose body holds a MatMul.
cond = helper.make_tensor_value_info('cond', TensorProto.BOOL, [])
xin = helper.make_tensor_value_info('x', TensorProto.FLOAT, [4, 8])
out = helper.make_tensor_value_info('out', TensorProto.FLOAT, [4, 8])
then_w = numpy_helper.from_array(np.random.randn(8, 8).astype(np.float32), 'then.w')
then_g = helper.make_graph([helper.make_node('MatMul', ['x', 'then.w'], ['then_out'], name='/then/MatMul')], 'then_branch', [],
                          [helper.make_tensor_value_info('then_out', TensorProto.FLOAT, [4, 8])], [then_w])
else_g = helper.make_graph([helper.make_node('Relu', ['x'], ['else_out'], name='/else/Relu')], 'else_branch', [],
                          [helper.make_tensor_value_info('else_out', TensorProto.FLOAT, [4, 8])])
body_w = numpy_helper.from_array(np.eye(8, dtype=np.float32), 'body.w')
body = helper.make_graph(
    [helper.make_node('Identity', ['cond_in'], ['cond_out'], name='/body/Identity'),
     helper.make_node('MatMul', ['acc_in', 'body.w'], ['acc_out'], name='/body/MatMul')],
    'loop_body',
    [helper.make_tensor_value_info('iter', TensorProto.INT64, []), helper.make_tensor_value_info('cond_in', TensorProto.BOOL, []),
     helper.make_tensor_value_info('acc_in', TensorProto.FLOAT, [4, 8])],
    [helper.make_tensor_value_info('cond_out', TensorProto.BOOL, []), helper.make_tensor_value_info('acc_out', TensorProto.FLOAT, [4, 8])],
    [body_w])
trip = numpy_helper.from_array(np.array(3, np.int64), 'trip')
cf = helper.make_graph(
    [helper.make_node('If', ['cond'], ['branch_out'], name='/if/If', then_branch=then_g, else_branch=else_g),
     helper.make_node('Loop', ['trip', 'cond', 'branch_out'], ['out'], name='/loop/Loop', body=body)],
    'control_flow', [cond, xin], [out], [trip])
cm = helper.make_model(cf, opset_imports=[helper.make_opsetid('', 13)], producer_name='layerplan-fixtures')
onnx.checker.check_model(cm)
onnx.save(cm, os.path.join(OUT, 'control-flow.onnx'))
print('wrote control-flow.onnx')

# com.microsoft MatMulNBits: 4-bit weights in blocks of 32 with fp32 scales (onnxruntime's contrib op).
K, N, BLK = 64, 16, 32
wf = np.random.randn(K, N).astype(np.float32)
q = np.zeros((N, K // BLK, BLK // 2), np.uint8)
scales = np.zeros((N * (K // BLK),), np.float32)
for n in range(N):
    for b in range(K // BLK):
        col = wf[b * BLK:(b + 1) * BLK, n]
        s = np.abs(col).max() / 7 or 1.0
        scales[n * (K // BLK) + b] = s
        qv = (np.clip(np.round(col / s), -8, 7) + 8).astype(np.uint8)
        q[n, b] = qv[0::2] | (qv[1::2] << 4)
nb = helper.make_graph(
    [helper.make_node('MatMulNBits', ['a', 'w_q', 'w_scales'], ['y'], name='/proj/MatMulNBits', domain='com.microsoft', K=K, N=N, bits=4, block_size=BLK)],
    'nbits', [helper.make_tensor_value_info('a', TensorProto.FLOAT, ['batch', K])], [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['batch', N])],
    [numpy_helper.from_array(q, 'w_q'), numpy_helper.from_array(scales, 'w_scales')])
nm = helper.make_model(nb, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.microsoft', 1)], producer_name='layerplan-fixtures')
onnx.save(nm, os.path.join(OUT, 'matmulnbits.onnx'))
print('wrote matmulnbits.onnx')

# Expected values computed by the onnx python package, for tests: params, node counts, ops.
import json
def count(graph):
    nodes, params, ops = 0, 0, {}
    for init in graph.initializer:
        params += int(np.prod(init.dims))
    for n in graph.node:
        nodes += 1
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
        if n.op_type == 'Constant':
            for a in n.attribute:
                if a.name == 'value':
                    params += int(np.prod(a.t.dims))
                elif a.name in ('value_float', 'value_int'):
                    params += 1
                elif a.name in ('value_floats', 'value_ints'):
                    params += len(a.floats) + len(a.ints)
        for a in n.attribute:
            subs = ([a.g] if a.HasField('g') else []) + list(a.graphs)
            for sg in subs:
                sn, sp, so = count(sg)
                nodes += sn
                params += sp
                for k, v in so.items():
                    ops[k] = ops.get(k, 0) + v
    return nodes, params, ops
expected = {}
for f in sorted(os.listdir(OUT)):
    if f.endswith('.onnx'):
        m = onnx.load(os.path.join(OUT, f), load_external_data=False)
        n, p, o = count(m.graph)
        expected[f] = {'nodes': n, 'parameters': p, 'ops': o, 'producer': m.producer_name,
                       'opsets': {(i.domain or 'ai.onnx'): i.version for i in m.opset_import}}
with open(os.path.join(OUT, 'expected.json'), 'w') as fh:
    json.dump(expected, fh, indent=1, sort_keys=True)
print('wrote expected.json')
