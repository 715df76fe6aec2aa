"""The peers a user would pick instead of our versions, each run the way it is fastest, on the same weights.

- pytorch: the network as a torch.nn.Module (Conv2d + BatchNorm2d, as torchvision builds it) loaded from our state,
  tried in every way PyTorch offers for CPU inference: eager NCHW, eager channels_last, TorchScript frozen and
  `optimize_for_inference` (BatchNorm folded, oneDNN convs), and `torch.compile` (Inductor) where it works. Each mode
  gets a short trial at batch 1; the fastest is the peer, and the JSON keeps every mode's trial median.
- onnxruntime: the same network as an ONNX graph (built from our weights with onnx.helper; the batch dimension is
  dynamic), all graph optimisations on, intra_op_num_threads = threads. The optimised graph is saved once to count
  its `com.microsoft.nchwc` nodes: the NCHWc layout transformation that makes ORT fast on x86 must really apply.
- onnxruntime-int8: that graph statically quantized (QDQ, int8 weights per output channel, uint8 activations,
  calibrated on the inputs given), the reduced-precision bar; its agreement with fp32 is reported, not checked.

Every peer has .name, .threads, .logits(x) with x HWC (224, 224, 3) or a batch NHWC (N, 224, 224, 3), like a
version, .describe() for the JSON, and .spawn(threads) for one more independent instance (streams).

PEERS, at the end, is the one list of them that bench, agree and the README generator read: a name, a precision,
the packages it needs, how to make one and how to label it. A new peer is one new entry there.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import arch
from ..errors import UserError
from ..safeio import write_file
from ..weights import to_torchvision

TORCH_MODES = ("eager", "channels_last", "jit", "compile")


def _nchw(x: np.ndarray) -> np.ndarray:
    x = x[None] if x.ndim == 3 else x
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _squeeze(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return y[0] if x.ndim == 3 else y


# ------------------------------------------------------------------------------------------------ PyTorch

def torch_module(state: Mapping[str, np.ndarray]) -> Any:
    """ResNet-50 as torch.nn modules (torchvision's structure and parameter names), weights from our state."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int, down: bool):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, 4 * width, 1, bias=False), nn.BatchNorm2d(4 * width)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = (nn.Sequential(nn.Conv2d(cin, 4 * width, 1, stride, bias=False),
                                             nn.BatchNorm2d(4 * width)) if down else None)

        def forward(self, x: Any) -> Any:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    class ResNet50(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (blocks, width) in enumerate(zip(arch.BLOCKS, arch.WIDTHS), start=1):
                layer = []
                for b in range(blocks):
                    layer.append(Bottleneck(cin, width, 2 if b == 0 and i > 1 else 1, b == 0))
                    cin = 4 * width
                setattr(self, f"layer{i}", nn.Sequential(*layer))
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(arch.FC_IN, arch.CLASSES)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    m = ResNet50().eval()
    sd = {k: torch.from_numpy(np.array(v)) for k, v in to_torchvision(state).items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise RuntimeError(f"torch module and state disagree: missing {missing}, unexpected {unexpected}")
    return m


class TorchPeer:
    """PyTorch at its fastest on this machine: every mode tried at batch 1, the fastest kept."""

    name = "pytorch"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, modes: Sequence[str] = TORCH_MODES,
                 trial_runs: int = 10, log: Callable[[str], None] | None = None):
        import torch

        self.torch, self.threads, self.version = torch, threads, torch.__version__
        torch.set_num_threads(threads)
        self.base = torch_module(state)
        self.trials: dict[str, Any] = {}
        self.setup_s: dict[str, float] = {}
        fastest = None
        x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
        for mode in modes:
            t0 = time.perf_counter()
            try:
                fn = self._build(mode)
                fn(self._input(mode, x))  # compiles / warms up
            except Exception as e:  # a mode that does not work here (torch.compile without a compiler, say)
                self.trials[mode] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                continue
            self.setup_s[mode] = round(time.perf_counter() - t0, 2)
            ms = []
            for _ in range(trial_runs):
                t = time.perf_counter()
                fn(self._input(mode, x))
                ms.append((time.perf_counter() - t) * 1e3)
            self.trials[mode] = round(float(np.median(ms)), 3)
            if log:
                log(f"pytorch {mode}: {self.trials[mode]} ms")
            if fastest is None or self.trials[mode] < self.trials[fastest]:
                fastest = mode
        if fastest is None:
            raise RuntimeError(f"no PyTorch mode works here: {self.trials}")
        self.mode = fastest
        self.fn = self._build(fastest)
        self.modes = tuple(modes)

    def _build(self, mode: str) -> Callable[[Any], Any]:
        torch = self.torch
        if mode == "eager":
            m = self.base
        elif mode == "channels_last":
            m = self.base.to(memory_format=torch.channels_last)
        elif mode == "jit":
            with torch.no_grad():
                ex = torch.zeros(1, 3, 224, 224)
                m = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(self.base, ex)))
        elif mode == "compile":
            m = torch.compile(self.base)
        else:
            raise ValueError(f"unknown PyTorch mode '{mode}'; the modes are: {', '.join(TORCH_MODES)}")

        def run(x: Any) -> Any:
            with torch.no_grad():
                return m(x)

        return run

    def _input(self, mode: str, x: np.ndarray) -> Any:
        t = self.torch.from_numpy(_nchw(x))
        return t.contiguous(memory_format=self.torch.channels_last) if mode == "channels_last" else t

    def logits(self, x: np.ndarray) -> np.ndarray:
        # torch's intra-op thread count is torch's, not this object's: we set ours when it differs, so that a
        # stream (spawn) and the full-width peer each run on their own count whichever ran last
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        return _squeeze(self.fn(self._input(self.mode, x)).numpy(), x)

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "mode": self.mode, "trial_median_ms": self.trials, "setup_s": self.setup_s}

    def spawn(self, threads: int) -> "TorchPeer":
        """One more instance on `threads` threads for streams; it shares the module (torch modules can be called
        from several threads at once)."""
        other = copy.copy(self)
        other.threads = threads
        return other


class TorchBf16Peer(TorchPeer):
    """PyTorch's own bf16 inference on the CPU: the module under torch.autocast(bfloat16) (convs and the fc in
    bf16 with fp32 accumulation, oneDNN's AVX512_BF16 / AMX kernels where the CPU has them), eager or channels_last,
    whichever is faster."""

    name = "pytorch-bf16"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, trial_runs: int = 10,
                 log: Callable[[str], None] | None = None):
        super().__init__(state, threads, ("eager", "channels_last"), trial_runs, log)

    def _build(self, mode: str) -> Callable[[Any], Any]:
        torch = self.torch
        inner = super()._build(mode)

        def run(x: Any) -> Any:
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                return inner(x).float()

        return run

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "precision": "bf16 autocast"}


# ------------------------------------------------------------------------------------------------ ONNX

def onnx_model(state: Mapping[str, np.ndarray], fold_batchnorm: bool = False) -> Any:
    """ResNet-50 as an ONNX graph (NCHW input 'x' with a dynamic batch 'N', output 'logits'), from our weights.

    fold_batchnorm: BatchNorm folded into each Conv's weights and bias (in float64), as the int8 quantizer needs
    (it quantizes Conv weights; a BatchNormalization node after a quantized Conv would stay in float).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def init(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name))
        return name

    def conv_bn(x: str, c: arch.Conv, relu: bool) -> str:
        w = state[f"{c.name}.weight"].transpose(0, 3, 1, 2).astype(np.float64)
        g, b, mean, var = (state[f"{c.bn}.{s}"].astype(np.float64)
                           for s in ("weight", "bias", "running_mean", "running_var"))
        attrs = dict(kernel_shape=[c.kernel] * 2, strides=[c.stride] * 2, pads=[c.pad] * 4)
        if fold_batchnorm:
            scale = g / np.sqrt(var + arch.BN_EPS)
            inputs = [x, init(f"{c.name}.weight", w * scale[:, None, None, None]),
                      init(f"{c.name}.bias", b - mean * scale)]
            nodes.append(helper.make_node("Conv", inputs, [f"{c.bn}.out"], **attrs))
        else:
            nodes.append(helper.make_node("Conv", [x, init(f"{c.name}.weight", w)], [f"{c.name}.out"], **attrs))
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
    graph = helper.make_graph(nodes, "resnet50",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", arch.CLASSES])], inits)
    # IR version 8 (ONNX 1.10+): readable by any onnxruntime of the last years, whatever onnx wrote by default
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _session(model_bytes: bytes, threads: int, save_optimized: Path | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if save_optimized is not None:
        opts.optimized_model_filepath = str(save_optimized)
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def count_nodes(model_bytes_or_path: Any) -> dict[str, int]:
    """Nodes per domain::op_type of an ONNX model (to see which layout transformations applied)."""
    import onnx

    m = onnx.load(str(model_bytes_or_path)) if isinstance(model_bytes_or_path, (str, Path)) else \
        onnx.load_from_string(model_bytes_or_path)
    counts: dict[str, int] = {}
    for n in m.graph.node:
        key = f"{n.domain or 'ai.onnx'}::{n.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return counts


class OrtPeer:
    """ONNX Runtime fp32, all graph optimisations (NCHWc on x86), intra_op_num_threads = threads."""

    name = "onnxruntime"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, model_bytes: bytes | None = None):
        import onnxruntime as ort

        self.model_bytes = model_bytes or onnx_model(state).SerializeToString()
        self.threads, self.version = threads, ort.__version__
        ort.set_default_logger_severity(3)  # saving the optimised graph warns that it is machine-specific: we know
        with tempfile.TemporaryDirectory() as tmp:
            opt = Path(tmp) / "optimized.onnx"
            self.session = _session(self.model_bytes, threads, opt)
            self.nodes = count_nodes(opt)
        self.nchwc_nodes = sum(n for k, n in self.nodes.items() if k.startswith("com.microsoft.nchwc::"))

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _squeeze(self.session.run(["logits"], {"x": _nchw(x)})[0], x)

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "nchwc_nodes": self.nchwc_nodes, "optimized_nodes": self.nodes}

    def spawn(self, threads: int) -> "OrtPeer":
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.threads = threads
        other.session = _session(self.model_bytes, threads)
        return other


class OrtInt8Peer(OrtPeer):
    """ONNX Runtime on the graph statically quantized to int8 (QDQ; weights per output channel, symmetric int8;
    activations uint8), calibrated (MinMax) on `calibration`, HWC inputs (a sequence with a length, iterated once)."""

    name = "onnxruntime-int8"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, calibration: Sequence[np.ndarray]):
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = ({"x": _nchw(x)} for x in calibration)  # one input at a time (they may be lazy)

            def get_next(self) -> dict | None:
                return next(self.items, None)

        import logging

        import onnxruntime as ort

        self.calibration_inputs = len(calibration)
        root = logging.getLogger()
        level = root.level
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            src.write_bytes(onnx_model(state, fold_batchnorm=True).SerializeToString())
            cwd = os.getcwd()
            os.chdir(tmp)  # the calibrator writes its augmented model into the working directory
            root.setLevel(logging.ERROR)  # the quantizer logs advice on the root logger
            ort.set_default_logger_severity(3)
            try:
                quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            finally:
                os.chdir(cwd)
                root.setLevel(level)
            super().__init__(state, threads, dst.read_bytes())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "quantization": "QDQ static, int8 weights per channel, uint8 activations, "
                                                      "MinMax", "calibration_inputs": self.calibration_inputs}


def export_onnx(state: Mapping[str, np.ndarray], path: Path) -> Path:
    """Write the ONNX graph the fp32 peer runs (dynamic batch) to `path` through safeio.write_file: an existing
    FIFO, device, directory or symlink there is refused, and a failure leaves an earlier file intact."""
    return write_file(path, onnx_model(state).SerializeToString(), UserError, "--onnx")


# ------------------------------------------------------------------------------------------------ the list

@dataclass(frozen=True)
class PeerInputs:
    """What a peer is made from: our weights, the thread count, the PyTorch modes to try, the int8 peer's
    calibration inputs (a function, called only when that peer is made: HWC inputs, a sequence with a length,
    iterated once) and where to say what the trials found."""

    state: Mapping[str, np.ndarray]
    threads: int
    torch_modes: Sequence[str] = TORCH_MODES
    calibration: Callable[[], Sequence[np.ndarray]] | None = None
    log: Callable[[str], None] | None = None


def _calibration(inputs: PeerInputs) -> Sequence[np.ndarray]:
    if inputs.calibration is None:
        raise ValueError("the int8 peer needs calibration inputs (PeerInputs.calibration)")
    return inputs.calibration()


def _mode(described: Mapping[str, Any]) -> str | None:
    return described.get("mode")


def _nchwc(described: Mapping[str, Any]) -> str | None:
    return f"{described['nchwc_nodes']} NCHWc nodes" if "nchwc_nodes" in described else None


@dataclass(frozen=True)
class PeerSpec:
    """One peer: its name, its precision ('fp32', 'bf16', 'int8': the reduced ones report their agreement with fp32
    instead of a check), the modules it imports (which are also the pip packages to install), how to make one, and
    how it ran as its describe() says ('jit', '56 NCHWc nodes'), for the label."""

    name: str
    precision: str
    packages: tuple[str, ...]
    make: Callable[[PeerInputs], Any]
    how: Callable[[Mapping[str, Any]], str | None]

    def label(self, described: Mapping[str, Any]) -> str:
        """The name with how it ran: 'pytorch (jit)', 'onnxruntime (56 NCHWc nodes)'; the bare name when the
        description does not say (an old results file)."""
        how = self.how(described)
        return f"{self.name} ({how})" if how else self.name


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec("pytorch", "fp32", ("torch",), lambda i: TorchPeer(i.state, i.threads, i.torch_modes, log=i.log), _mode),
    PeerSpec("pytorch-bf16", "bf16", ("torch",), lambda i: TorchBf16Peer(i.state, i.threads, log=i.log), _mode),
    PeerSpec("onnxruntime", "fp32", ("onnxruntime", "onnx"), lambda i: OrtPeer(i.state, i.threads), _nchwc),
    PeerSpec("onnxruntime-int8", "int8", ("onnxruntime", "onnx"),
             lambda i: OrtInt8Peer(i.state, i.threads, _calibration(i)),
             lambda d: "static QDQ" if "quantization" in d else None),
)


def get(name: str) -> PeerSpec | None:
    """The peer called `name`, or None when no peer is (a version's name, 'oracle')."""
    return next((s for s in PEERS if s.name == name), None)


def label(name: str, described: Mapping[str, Any]) -> str:
    """A results row's peer label (get(name).label); a name no peer has any more (an old results file): bare."""
    spec = get(name)
    return spec.label(described) if spec else name


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def installed() -> list[PeerSpec]:
    """The peers whose packages are installed here, in the order of PEERS."""
    return [s for s in PEERS if all(_importable(m) for m in s.packages)]


def make(spec: PeerSpec, inputs: PeerInputs) -> Any:
    """One instance of the peer; a package it needs that is not installed is one sentence naming the package to
    install, not an ImportError."""
    try:
        return spec.make(inputs)
    except ImportError as e:
        missing = (getattr(e, "name", None) or spec.packages[0]).split(".")[0]
        raise UserError(f"'{spec.name}' needs the {missing} package, which is not installed here: pip install "
                        f"{missing}") from None
