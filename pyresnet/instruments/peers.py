"""The peers a user would pick instead of our versions: PyTorch and ONNX Runtime, on the same weights.

Both run the same ResNet-50 on the same state: PyTorch through the oracle's torch.nn.functional network, ONNX
Runtime through an ONNX graph we build from our weights with onnx.helper (no torch export needed). Each peer has
.name, .threads and .logits(x) with x the HWC float32 input, like a version.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import arch


class TorchPeer:
    name = "pytorch"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int):
        from ..reference.oracle import Oracle

        self.oracle = Oracle(state, threads=threads)
        self.threads = threads
        self.version = __import__("torch").__version__

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.oracle.logits(x)


def onnx_model(state: Mapping[str, np.ndarray]) -> Any:
    """ResNet-50 as an ONNX graph (NCHW input 'x', output 'logits'), from our weights (OHWI -> OIHW)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def init(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name))
        return name

    def conv_bn(x: str, c: arch.Conv, relu: bool) -> str:
        w = init(f"{c.name}.weight", state[f"{c.name}.weight"].transpose(0, 3, 1, 2))
        nodes.append(helper.make_node("Conv", [x, w], [f"{c.name}.out"], kernel_shape=[c.kernel] * 2,
                                      strides=[c.stride] * 2, pads=[c.pad] * 4))
        bn = [init(f"{c.bn}.{s}", state[f"{c.bn}.{s}"]) for s in ("weight", "bias", "running_mean", "running_var")]
        nodes.append(helper.make_node("BatchNormalization", [f"{c.name}.out", *bn], [f"{c.bn}.out"],
                                      epsilon=arch.BN_EPS))
        if not relu:
            return f"{c.bn}.out"
        nodes.append(helper.make_node("Relu", [f"{c.bn}.out"], [f"{c.bn}.relu"]))
        return f"{c.bn}.relu"

    x = conv_bn("x", arch.stem(), True)
    nodes.append(helper.make_node("MaxPool", [x], ["maxpool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
    x = "maxpool"
    for b in arch.blocks():
        out = conv_bn(x, b.conv1, True)
        out = conv_bn(out, b.conv2, True)
        out = conv_bn(out, b.conv3, False)
        short = conv_bn(x, b.downsample, False) if b.downsample else x
        nodes.append(helper.make_node("Add", [out, short], [f"{b.prefix}.sum"]))
        nodes.append(helper.make_node("Relu", [f"{b.prefix}.sum"], [f"{b.prefix}.out"]))
        x = f"{b.prefix}.out"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["features"]))
    fw, fb = init("fc.weight", state["fc.weight"]), init("fc.bias", state["fc.bias"])
    nodes.append(helper.make_node("Gemm", ["features", fw, fb], ["logits"], transB=1))
    graph = helper.make_graph(nodes, "resnet50", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, arch.CLASSES])], inits)
    # IR version 8 (ONNX 1.10+): readable by any onnxruntime of the last years, whatever onnx wrote by default
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


class OrtPeer:
    name = "onnxruntime"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(onnx_model(state).SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.threads = threads
        self.version = ort.__version__

    def logits(self, x: np.ndarray) -> np.ndarray:
        nchw = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        return self.session.run(["logits"], {"x": nchw})[0][0]


def available(state: Mapping[str, np.ndarray], threads: int) -> list[Any]:
    """The peers that are installed here, built on `state`."""
    out: list[Any] = []
    for cls, module in ((TorchPeer, "torch"), (OrtPeer, "onnxruntime")):
        try:
            __import__(module)
            if cls is OrtPeer:
                __import__("onnx")
        except ImportError:
            continue
        out.append(cls(state, threads))
    return out
