#!/usr/bin/python3
"""Exports the small real models under test/fixtures/models with Debian's python3-torch and python3-onnx.

Run with /usr/bin/python3 scripts/make-fixtures.py (apt-get install python3-torch python3-onnx);
`--only name,name` rebuilds just those fixtures (the others stay byte for byte as committed).
The outputs are committed; this toolchain is not needed to run the tests.
"""
import os
import sys
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'models')
os.makedirs(OUT, exist_ok=True)
ONLY = set(sys.argv[sys.argv.index('--only') + 1].split(',')) if '--only' in sys.argv else None


def wanted(name):
    return ONLY is None or name in ONLY
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


def export(model, args, name, inputs, outputs, dynamic, trained_norms=True):
    if not wanted(name.replace('.onnx', '')):
        return None
    model.eval()
    # Trained-looking norms: torch's exporter merges identical initializers (fresh LayerNorms are all ones).
    with torch.no_grad():
        for mod in model.modules() if trained_norms else []:
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
if wanted('gpt2-tiny-external'):
    m = onnx.load(os.path.join(OUT, 'gpt2-tiny.onnx'))
    onnx.save_model(m, os.path.join(OUT, 'gpt2-tiny-external.onnx'), save_as_external_data=True, all_tensors_to_one_file=True,
                    location='gpt2-tiny-external.onnx.data', size_threshold=256)
    print('wrote gpt2-tiny-external.onnx (+ .data)')

# A QDQ-quantized two-layer MLP: int8 per-channel weights (axis 0 of [out, in] after transpose), uint8 activations.
if wanted('qdq-mlp'):
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
if wanted('control-flow'):
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
if wanted('matmulnbits'):
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

# Shared parameters: three encoder layers copied from one (a model initialized from a pretrained
# layer). torch's exporter stores identical initializers once and hands every other use an Identity
# node (`Identity_12: onnx::MatMul_406 -> onnx::MatMul_420`): the structure of the deduplicated exports users bring.
if wanted('bert-shared'):
    import copy
    torch.manual_seed(1)
    shared = TinyBERT(layers=3)
    shared.layer[1] = copy.deepcopy(shared.layer[0])
    shared.layer[2] = copy.deepcopy(shared.layer[0])
    export(shared, (torch.randint(0, 200, (1, 12)),), 'bert-shared.onnx', ['input_ids'], ['pooled'],
           {'input_ids': {0: 'batch', 1: 'sequence'}, 'pooled': {0: 'batch'}}, trained_norms=False)

# A GPT-2 as its config creates it (LayerNorms all ones and zeros): torch deduplicates every norm's
# weight and bias, so ln_f reads h.0.ln_1's through Identity nodes.
if wanted('gpt2-fresh'):
    torch.manual_seed(2)
    export(TinyGPT(), (torch.randint(0, 256, (1, 16)),), 'gpt2-fresh.onnx', ['input_ids'], ['logits'],
           {'input_ids': {0: 'batch', 1: 'sequence'}, 'logits': {0: 'batch', 1: 'sequence'}}, trained_norms=False)


class Builder:
    """A graph written the way an exporter writes it: numbered node and tensor names, weights as values."""
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.consts, self.inits, self.counters = [], [], [], {}

    def count(self, key):
        c = self.counters.get(key, 0)
        self.counters[key] = c + 1
        return c

    def weight(self, name, shape, scale=0.1, as_constant=True):
        value = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        t = numpy_helper.from_array(value, name)
        if as_constant:
            # Paddle2ONNX before 1.0 wrote parameters as unnamed Constant nodes at the top of the graph.
            self.consts.append(helper.make_node('Constant', [], [name], value=t))
        else:
            self.inits.append(t)
        return name

    def ints(self, name, values):
        self.consts.append(helper.make_node('Constant', [], [name], value=numpy_helper.from_array(np.array(values, np.int64), name)))
        return name


def paddle_rec():
    """PP-OCR's recognizer (MobileNetV3 backbone, BiLSTM neck, CTC head) as Paddle2ONNX names it:
    nodes p2o.<Op>.<n> (MapperHelper::GenName), tensors <paddle op>_<n>.tmp_<k>, parameters
    conv2d_<n>.w_0 / batch_norm_<n>.w_0 … as unnamed Constant nodes, BatchNormalization kept."""
    b = Builder(3)
    def node(op, inputs, var, **attrs):
        out = f'{var}.tmp_{b.count(var + ".tmp")}' if '.' not in var else var
        b.nodes.append(helper.make_node(op, inputs, [out], name=f'p2o.{op}.{b.count(op)}', **attrs))
        return out
    def conv_bn(x, cin, cout, k, stride=(1, 1), groups=1, act=None):
        n = b.count('conv2d')
        w = b.weight(f'conv2d_{n}.w_0', (cout, cin // groups, k, k), scale=(2.0 / (cin // groups * k * k)) ** 0.5)
        y = node('Conv', [x, w], f'conv2d_{n}', kernel_shape=[k, k], strides=list(stride), pads=[k // 2] * 4, group=groups, dilations=[1, 1])
        m = b.count('batch_norm')
        scale = b.weight(f'batch_norm_{m}.w_0', (cout,), 0.1)
        bias = b.weight(f'batch_norm_{m}.b_0', (cout,), 0.1)
        mean = b.weight(f'batch_norm_{m}.w_1', (cout,), 0.1)
        var = numpy_helper.from_array(np.abs(b.rng.standard_normal(cout)).astype(np.float32) + 0.5, f'batch_norm_{m}.w_2')
        b.consts.append(helper.make_node('Constant', [], [var.name], value=var))
        y = node('BatchNormalization', [y, scale, bias, mean, var.name], f'batch_norm_{m}', epsilon=1e-5)
        if act == 'relu':
            y = node('Relu', [y], f'relu_{b.count("relu")}')
        elif act == 'hardswish':
            y = node('HardSwish', [y], f'hardswish_{b.count("hardswish")}')
        return y
    def se(x, c):
        n = b.count('se')
        p = node('GlobalAveragePool', [x], f'pool2d_{b.count("pool2d")}')
        w1 = b.weight(f'conv2d_se{n}_1.w_0', (c // 4, c, 1, 1))
        b1 = b.weight(f'conv2d_se{n}_1.b_0', (c // 4,))
        h = node('Conv', [p, w1, b1], f'conv2d_se{n}_1', kernel_shape=[1, 1])
        h = node('Relu', [h], f'relu_{b.count("relu")}')
        w2 = b.weight(f'conv2d_se{n}_2.w_0', (c, c // 4, 1, 1))
        b2 = b.weight(f'conv2d_se{n}_2.b_0', (c,))
        h = node('Conv', [h, w2, b2], f'conv2d_se{n}_2', kernel_shape=[1, 1])
        h = node('HardSigmoid', [h], f'hardsigmoid_{b.count("hardsigmoid")}', alpha=0.2, beta=0.5)
        return node('Mul', [x, h], f'elementwise_mul_{b.count("elementwise_mul")}')
    def unit(x, cin, exp, cout, k, stride, act, use_se):
        y = conv_bn(x, cin, exp, 1, act=act)
        y = conv_bn(y, exp, exp, k, stride, groups=exp, act=act)
        if use_se:
            y = se(y, exp)
        y = conv_bn(y, exp, cout, 1)
        if cin == cout and stride == (1, 1):
            y = node('Add', [x, y], f'elementwise_add_{b.count("elementwise_add")}')
        return y
    x = 'x'
    y = conv_bn(x, 3, 8, 3, (2, 2), act='hardswish')
    for cin, exp, cout, k, stride, act, use_se in [
        (8, 16, 8, 3, (2, 1), 'relu', True),
        (8, 24, 8, 3, (1, 1), 'relu', False),
        (8, 32, 16, 5, (2, 1), 'hardswish', True),
        (16, 48, 16, 5, (1, 1), 'hardswish', True),
        (16, 48, 24, 5, (2, 1), 'hardswish', True),
        (24, 64, 24, 5, (1, 1), 'hardswish', True),
    ]:
        y = unit(y, cin, exp, cout, k, stride, act, use_se)
    y = conv_bn(y, 24, 48, 1, act='hardswish')
    y = node('MaxPool', [y], f'pool2d_{b.count("pool2d")}', kernel_shape=[2, 2], strides=[2, 2])
    # Im2Seq: [N, C, 1, W] -> [N, W, C]
    y = node('Squeeze', [y, b.ints('squeeze_axes', [2])], f'squeeze_{b.count("squeeze")}')
    y = node('Transpose', [y], f'transpose_{b.count("transpose")}', perm=[0, 2, 1])
    # Neck: two bidirectional LSTM layers (paddle's rnn op), time-major inside; W/R/B concatenated from the
    # per-direction parameters at run time, as Paddle2ONNX's rnn mapper does.
    y = node('Transpose', [y], f'transpose_{b.count("transpose")}', perm=[1, 0, 2])
    hidden, width = 24, 48
    for layer in range(2):
        parts = {}
        for kind, shape in [('w', (4 * hidden, width)), ('r', (4 * hidden, hidden)), ('b', (8 * hidden,))]:
            dirs = []
            for d in range(2):
                name = b.weight(f'lstm_{layer}.{kind}_{d}', shape, 0.1)
                dirs.append(node('Unsqueeze', [name, b.ints(f'lstm_{layer}.{kind}{d}_axes', [0])], f'unsqueeze_{b.count("unsqueeze")}'))
            parts[kind] = node('Concat', dirs, f'concat_{b.count("concat")}', axis=0)
        seq = f'lstm_{layer}.tmp_0'
        b.nodes.append(helper.make_node('LSTM', [y, parts['w'], parts['r'], parts['b']], [seq], name=f'p2o.LSTM.{b.count("LSTM")}',
                                        hidden_size=hidden, direction='bidirectional'))
        y = node('Transpose', [seq], f'transpose_{b.count("transpose")}', perm=[0, 2, 1, 3])
        y = node('Reshape', [y, b.ints(f'reshape_{layer}_shape', [0, 0, 2 * hidden])], f'reshape2_{b.count("reshape2")}')
    y = node('Transpose', [y], f'transpose_{b.count("transpose")}', perm=[1, 0, 2])
    # CTC head: a linear layer over the 37 classes and a softmax.
    w = b.weight('linear_0.w_0', (2 * hidden, 37))
    bias = b.weight('linear_0.b_0', (37,))
    y = node('MatMul', [y, w], 'linear_0.tmp_0')
    y = node('Add', [y, bias], 'linear_0.tmp_1')
    y = node('Softmax', [y], 'softmax_0.tmp_0', axis=2)
    g = helper.make_graph(b.consts + b.nodes, 'paddle-infer',
                          [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['p2o.DynamicDimension.0', 3, 32, 100])],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, ['p2o.DynamicDimension.0', 25, 37])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)], producer_name='PaddlePaddle', producer_version='0.9.8')
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, 'paddle-rec.onnx'))
    print('wrote paddle-rec.onnx', os.path.getsize(os.path.join(OUT, 'paddle-rec.onnx')))


def vad_tiny():
    """A voice-activity detector shaped like Silero VAD's ONNX export (TorchScript names: Conv_12,
    numbered tensors): an If on the sample rate whose branches each hold a model — an STFT as a
    Conv1d, an encoder of four Conv1d + Relu, an LSTM cell run frame by frame in a Loop whose
    frames arrive as a loop-carried value (no declared shape) and whose W / R / B are built from the
    weights inside the body, a decoder Conv1d + Sigmoid."""
    b = Builder(4)
    names = {'n': 0}
    def t():
        names['n'] += 1
        return str(names['n'])
    def branch(prefix, samples_per_hop, fft_bins, kernel):
        nodes = []
        def node(op, inputs, outputs=None, **attrs):
            outs = outputs or [t()]
            nodes.append(helper.make_node(op, inputs, outs, name=f'{op}_{b.count("node")}', **attrs))
            return outs[0]
        def const(values, dtype=np.int64):
            out = t()
            nodes.append(helper.make_node('Constant', [], [out], name=f'Constant_{b.count("node")}',
                                          value=numpy_helper.from_array(np.array(values, dtype), out)))
            return out
        x = node('Unsqueeze', ['input', const([1])])
        basis = b.weight(f'{prefix}.stft.forward_basis_buffer', (2 * fft_bins, 1, kernel), 0.1, as_constant=False)
        spec = node('Conv', [x, basis], kernel_shape=[kernel], strides=[samples_per_hop], pads=[0, 0])
        real = node('Slice', [spec, const([0]), const([fft_bins]), const([1])])
        imag = node('Slice', [spec, const([fft_bins]), const([2 * fft_bins]), const([1])])
        mag = node('Sqrt', [node('Add', [node('Pow', [real, const(2.0, np.float32)]), node('Pow', [imag, const(2.0, np.float32)])])])
        h, cin = mag, fft_bins
        for i, stride in enumerate([1, 2, 1, 1]):
            w = b.weight(f'{prefix}.encoder.{i}.reparam_conv.weight', (16, cin, 3), (2.0 / (3 * cin)) ** 0.5, as_constant=False)
            bias = b.weight(f'{prefix}.encoder.{i}.reparam_conv.bias', (16,), 0.05, as_constant=False)
            h = node('Relu', [node('Conv', [h, w, bias], kernel_shape=[3], strides=[stride], pads=[1, 1])])
            cin = 16
        # The LSTM cell over frames: M = number of frames; carried h, c and the frames themselves.
        frames = node('Transpose', [h], perm=[2, 0, 1])  # [T, B, 16]
        trip = node('Gather', [node('Shape', [frames]), const(0)], axis=0)
        h0 = node('Gather', ['state', const(0)], axis=0)
        c0 = node('Gather', ['state', const(1)], axis=0)
        w_ih = b.weight(f'{prefix}.decoder.rnn.weight_ih', (64, 16), 0.2, as_constant=False)
        w_hh = b.weight(f'{prefix}.decoder.rnn.weight_hh', (64, 16), 0.2, as_constant=False)
        b_ih = b.weight(f'{prefix}.decoder.rnn.bias_ih', (64,), 0.05, as_constant=False)
        b_hh = b.weight(f'{prefix}.decoder.rnn.bias_hh', (64,), 0.05, as_constant=False)
        body_nodes = []
        def bnode(op, inputs, outputs=None, **attrs):
            outs = outputs or [t()]
            body_nodes.append(helper.make_node(op, inputs, outs, name=f'{op}_{b.count("node")}', **attrs))
            return outs[0]
        def bconst(values):
            out = t()
            body_nodes.append(helper.make_node('Constant', [], [out], name=f'Constant_{b.count("node")}',
                                               value=numpy_helper.from_array(np.array(values, np.int64), out)))
            return out
        it, cond_in, h_in, c_in, f_in = t(), t(), t(), t(), t()
        x_t = bnode('Unsqueeze', [bnode('Gather', [f_in, it], axis=0), bconst([0])])
        W = bnode('Unsqueeze', [w_ih, bconst([0])])
        R = bnode('Unsqueeze', [w_hh, bconst([0])])
        B = bnode('Unsqueeze', [bnode('Concat', [b_ih, b_hh], axis=0), bconst([0])])
        y, yh, yc = t(), t(), t()
        bnode('LSTM', [x_t, W, R, B, '', bnode('Unsqueeze', [h_in, bconst([0])]), bnode('Unsqueeze', [c_in, bconst([0])])],
              [y, yh, yc], hidden_size=16)
        h_out = bnode('Squeeze', [yh, bconst([0])])
        c_out = bnode('Squeeze', [yc, bconst([0])])
        cond_out = bnode('Identity', [cond_in])
        f_out = bnode('Identity', [f_in])
        scan = bnode('Identity', [h_out])
        body = helper.make_graph(body_nodes, f'{prefix}_loop_body',
                                 [helper.make_tensor_value_info(it, TensorProto.INT64, []),
                                  helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
                                  helper.make_tensor_value_info(h_in, TensorProto.FLOAT, None),
                                  helper.make_tensor_value_info(c_in, TensorProto.FLOAT, None),
                                  helper.make_tensor_value_info(f_in, TensorProto.FLOAT, None)],
                                 [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
                                  helper.make_tensor_value_info(h_out, TensorProto.FLOAT, None),
                                  helper.make_tensor_value_info(c_out, TensorProto.FLOAT, None),
                                  helper.make_tensor_value_info(f_out, TensorProto.FLOAT, None),
                                  helper.make_tensor_value_info(scan, TensorProto.FLOAT, None)])
        true = t()
        nodes.append(helper.make_node('Constant', [], [true], name=f'Constant_{b.count("node")}',
                                      value=numpy_helper.from_array(np.array(True), true)))
        hN, cN, _, seq = t(), t(), t(), t()
        nodes.append(helper.make_node('Loop', [trip, true, h0, c0, frames], [hN, cN, _, seq], name=f'Loop_{b.count("node")}', body=body))
        dec = node('Relu', [node('Transpose', [seq], perm=[1, 2, 0])])
        wd = b.weight(f'{prefix}.decoder.decoder.2.weight', (1, 16, 1), 0.3, as_constant=False)
        bd = b.weight(f'{prefix}.decoder.decoder.2.bias', (1,), 0.1, as_constant=False)
        prob = node('Sigmoid', [node('Conv', [dec, wd, bd], kernel_shape=[1])])
        out = node('ReduceMean', [prob], axes=[2], keepdims=0)
        state = node('Concat', [node('Unsqueeze', [hN, const([0])]), node('Unsqueeze', [cN, const([0])])], axis=0)
        o1, o2 = t(), t()
        nodes.append(helper.make_node('Identity', [out], [o1], name=f'Identity_{b.count("node")}'))
        nodes.append(helper.make_node('Identity', [state], [o2], name=f'Identity_{b.count("node")}'))
        return helper.make_graph(nodes, f'{prefix}_branch', [], [helper.make_tensor_value_info(o1, TensorProto.FLOAT, None),
                                                                   helper.make_tensor_value_info(o2, TensorProto.FLOAT, None)])
    then_g = branch('_model', 32, 33, 64)
    else_g = branch('_model_8k', 16, 17, 32)
    sr_16k = numpy_helper.from_array(np.array(16000, np.int64), 'sr_16k')
    top = [helper.make_node('Equal', ['sr', 'sr_16k'], ['is_16k'], name='Equal_0'),
           helper.make_node('If', ['is_16k'], ['output', 'stateN'], name='If_1', then_branch=then_g, else_branch=else_g)]
    g = helper.make_graph(top, 'torch_jit', [
        helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch', 'samples']),
        helper.make_tensor_value_info('state', TensorProto.FLOAT, [2, 'batch', 16]),
        helper.make_tensor_value_info('sr', TensorProto.INT64, [])],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, ['batch', 1]),
         helper.make_tensor_value_info('stateN', TensorProto.FLOAT, [2, 'batch', 16])], b.inits + [sr_16k])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 16)], producer_name='pytorch', producer_version='1.13.1')
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, 'vad-tiny.onnx'))
    print('wrote vad-tiny.onnx', os.path.getsize(os.path.join(OUT, 'vad-tiny.onnx')))


if wanted('paddle-rec'):
    paddle_rec()
if wanted('vad-tiny'):
    vad_tiny()

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
