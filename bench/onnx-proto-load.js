// Baseline: read the whole file and decode it with onnx-proto (protobufjs), as a JS user would without Layerplan.
const fs = require('fs');
const { onnx } = require('onnx-proto');
const m = onnx.ModelProto.decode(fs.readFileSync(process.argv[2]));
process.stdout.write(`${m.graph.node.length} nodes\n`);
