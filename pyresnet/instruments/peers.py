"""The peers a user would pick instead of our versions, each run the way it is fastest, on the same weights.

- pytorch: the network as a torch.nn.Module (Conv2d + BatchNorm2d, as torchvision builds it) loaded from our state,
  tried in every way PyTorch offers for CPU inference: eager NCHW, eager channels_last, TorchScript frozen and
  `optimize_for_inference` (BatchNorm folded, oneDNN convs), and `torch.compile` (Inductor) where it works. Each mode
  gets a short trial at batch 1 (interleaved in rounds, as bench's rows are); the fastest is the peer, and the JSON
  keeps every mode's trial median.
- onnxruntime: the same network as an ONNX graph (built from our weights with onnx.helper; the batch dimension is
  dynamic), all graph optimisations on, intra_op_num_threads = threads. The optimised graph is saved once to count
  its `com.microsoft.nchwc` nodes: the NCHWc layout transformation that makes ORT fast on x86 must really apply.
- onnxruntime-int8: that graph statically quantized (QDQ, int8 weights per output channel, uint8 activations,
  calibrated on the inputs given), the reduced-precision bar; its agreement with fp32 is reported, not checked.
- openvino: the same ONNX graph through ov.convert_model (BatchNorm folded by its transformations), compiled for the
  CPU with PERFORMANCE_HINT=LATENCY, INFERENCE_NUM_THREADS = threads and INFERENCE_PRECISION_HINT=f32 (a bf16 CPU
  would otherwise get bf16); async_throughput() runs it the way OpenVINO measures throughput: THROUGHPUT hint, an
  AsyncInferQueue of the compiled model's optimal number of requests.
- openvino-bf16: the same with INFERENCE_PRECISION_HINT=bf16, where the CPU plugin has BF16.
- openvino-int8: the converted model quantized by NNCF (nncf.quantize, post-training, preset PERFORMANCE, target
  CPU) on the same calibration inputs as onnxruntime-int8.

Every peer has .name, .threads, .logits(x) with x HWC (224, 224, 3) or a batch NHWC (N, 224, 224, 3), like a
version, .describe() for the JSON, and .spawn(threads) for one more independent instance (streams).

PEERS, at the end, is the one list of them that bench, agree and the README generator read: a name, a precision,
the packages it needs, how to make one and how to label it. A new peer is one new entry there.
"""

from __future__ import annotations

import copy
import functools
import os
import random
import sys
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
TRIAL_ROUNDS = 4  # the PyTorch modes' trial, interleaved in this many rounds


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
                 trial_runs: int = 20, log: Callable[[str], None] | None = None):
        import torch

        self.torch, self.threads, self.version = torch, threads, torch.__version__
        torch.set_num_threads(threads)
        self.base = torch_module(state)
        self.trials: dict[str, Any] = {}
        self.setup_s: dict[str, float] = {}
        x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
        built: dict[str, Callable[[Any], Any]] = {}
        for mode in modes:
            t0 = time.perf_counter()
            try:
                fn = self._build(mode)
                fn(self._input(mode, x))  # compiles / warms up
            except Exception as e:  # a mode that does not work here (torch.compile without a compiler, say)
                self.trials[mode] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                continue
            self.setup_s[mode] = round(time.perf_counter() - t0, 2)
            built[mode] = fn
        if not built:
            raise RuntimeError(f"no PyTorch mode works here: {self.trials}")
        # The trial is interleaved as bench's rows are: TRIAL_ROUNDS rounds, the modes in a shuffled order in each,
        # so that a slow stretch of the host does not pick the mode that happened to run outside it.
        ms: dict[str, list[float]] = {m: [] for m in built}
        per_round = max(1, -(-trial_runs // TRIAL_ROUNDS))
        for r in range(TRIAL_ROUNDS):
            for mode in random.Random(r).sample(list(built), len(built)):
                built[mode](self._input(mode, x))  # untimed: the other modes had the caches
                for _ in range(per_round):
                    t = time.perf_counter()
                    built[mode](self._input(mode, x))
                    ms[mode].append((time.perf_counter() - t) * 1e3)
        for mode, got in ms.items():
            self.trials[mode] = round(float(np.median(got)), 3)
            if log:
                log(f"pytorch {mode}: {self.trials[mode]} ms")
        fastest = min(ms, key=lambda m: self.trials[m])
        self.mode = fastest
        self.fn = built[fastest]
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

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, trial_runs: int = 20,
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


# ------------------------------------------------------------------------------------------------ OpenVINO

@functools.lru_cache(maxsize=None)
def _ov_core() -> Any:
    """One openvino.Core for every OpenVINO peer (a Core loads its device plugins once)."""
    import openvino as ov

    return ov.Core()


@functools.lru_cache(maxsize=None)
def _ov_bf16() -> str | None:
    """None where OpenVINO's CPU plugin runs bf16 here (OPTIMIZATION_CAPABILITIES has BF16), else the reason."""
    if "BF16" in _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    return "this CPU has no bf16 for OpenVINO (its CPU OPTIMIZATION_CAPABILITIES lack BF16)"


def _ov_model(state: Mapping[str, np.ndarray]) -> Any:
    """The ONNX graph of the ONNX Runtime peer (dynamic batch), converted by ov.convert_model from bytes in memory,
    as OpenVINO's users convert a model: its offline transformations fold each BatchNormalization into the Conv
    before it (read_model would keep BatchNormInference nodes, and NNCF would then quantize between Conv and BN)."""
    import io

    import openvino as ov

    return ov.convert_model(io.BytesIO(onnx_model(state).SerializeToString()))


def _ov_value(v: Any) -> Any:
    """A property read back from a compiled model, as JSON: ov.Type as 'f32' / 'bf16', enums as their name."""
    if hasattr(v, "get_type_name"):
        return v.get_type_name()
    return v if isinstance(v, (bool, int, float, str)) else str(v)


class OpenVinoPeer:
    """OpenVINO on the CPU: the ONNX graph converted (ov.convert_model), compiled with PERFORMANCE_HINT=LATENCY,
    INFERENCE_NUM_THREADS = threads and INFERENCE_PRECISION_HINT = PRECISION, asked for explicitly: on a CPU with
    bf16 the plugin's default is bf16, not f32. The batch dimension stays dynamic (batch 1 measured as fast as a
    model reshaped to a static [1, 3, 224, 224]); inputs go in NCHW (_nchw: as fast as a PrePostProcessor layout
    conversion). async_throughput(): the way OpenVINO's users run for throughput, a second model compiled once with
    PERFORMANCE_HINT=THROUGHPUT, fed through an AsyncInferQueue."""

    name = "openvino"
    PRECISION = "f32"  # INFERENCE_PRECISION_HINT

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, model: Any = None):
        import openvino as ov

        t0 = time.perf_counter()
        self.ov, self.version, self.threads = ov, ov.__version__, threads
        self.model = model if model is not None else _ov_model(state)
        self.pinning: bool | None = None  # ENABLE_CPU_PINNING: None leaves the plugin's default (spawn: off)
        self.compiled = self._compile("LATENCY", self.model)
        self.request = self.compiled.create_infer_request()
        self.queue: Any = None  # async_throughput's model and AsyncInferQueue, made on its first call
        self.setup_s = round(time.perf_counter() - t0, 2)

    def _compile(self, hint: str, model: Any) -> Any:
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": self.threads,
                                  "INFERENCE_PRECISION_HINT": self.PRECISION}
        if self.pinning is not None:
            config["ENABLE_CPU_PINNING"] = self.pinning
        return _ov_core().compile_model(model, "CPU", config)

    def logits(self, x: np.ndarray) -> np.ndarray:
        # the outputs come back as copies (share_outputs=False): the next call does not overwrite them
        return _squeeze(self.request.infer({0: _nchw(x)}, share_inputs=True)[0], x)

    def async_throughput(self, x: np.ndarray, seconds: float) -> tuple[int, float]:
        """(images done, elapsed seconds) of at least `seconds` of asynchronous inference: the model compiled once
        with PERFORMANCE_HINT=THROUGHPUT (and INFERENCE_NUM_THREADS = threads), reshaped to batch 1, an
        AsyncInferQueue of its OPTIMAL_NUMBER_OF_INFER_REQUESTS jobs fed x's images (HWC, or each image of an NHWC
        batch in turn) one at a time; one untimed pass of every job first. The clock stops when every job started
        has finished."""
        if self.queue is None:
            model = self.model.clone()
            model.reshape([1, 3, 224, 224])
            compiled = self._compile("THROUGHPUT", model)
            self.throughput = {k: _ov_value(compiled.get_property(p)) for k, p in (
                ("streams", "NUM_STREAMS"), ("nireq", "OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
                ("threads", "INFERENCE_NUM_THREADS"), ("precision", "INFERENCE_PRECISION_HINT"))}
            self.queue = self.ov.AsyncInferQueue(compiled, self.throughput["nireq"])
        images = [{0: _nchw(im)} for im in (x if x.ndim == 4 else x[None])]
        queue = self.queue
        for i in range(len(queue)):
            queue.start_async(images[i % len(images)])
        queue.wait_all()
        done, t0 = 0, time.perf_counter()
        while True:
            queue.start_async(images[done % len(images)])  # waits for an idle job (the GIL released)
            done += 1
            if time.perf_counter() - t0 >= seconds:
                break
        queue.wait_all()
        return done, time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        c = self.compiled
        d = {"version": self.version, "hint": c.get_property("PERFORMANCE_HINT"),
             "precision": _ov_value(c.get_property("INFERENCE_PRECISION_HINT")),
             "threads": _ov_value(c.get_property("INFERENCE_NUM_THREADS")),
             "streams": _ov_value(c.get_property("NUM_STREAMS")), "nireq": 1,
             "cpu_pinning": _ov_value(c.get_property("ENABLE_CPU_PINNING")), "setup_s": self.setup_s}
        if self.queue is not None:
            d["throughput"] = {"hint": "THROUGHPUT", **self.throughput}
        return d

    def spawn(self, threads: int) -> "OpenVinoPeer":
        """One more instance on `threads` threads, from the same ov.Model (an int8 one is not quantized again). Its
        threads are not pinned: every compiled model pins from the same first core, so two instances in one process
        would share one core (measured: two 1-thread instances pinned ran no faster together than one)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.threads, other.pinning, other.queue = threads, False, None
        other.compiled = other._compile("LATENCY", other.model)
        other.request = other.compiled.create_infer_request()
        return other


class OpenVinoBf16Peer(OpenVinoPeer):
    """OpenVINO's own bf16: the fp32 model compiled with INFERENCE_PRECISION_HINT=bf16 (offered only where the
    CPU plugin lists BF16 among its OPTIMIZATION_CAPABILITIES)."""

    name = "openvino-bf16"
    PRECISION = "bf16"


class OpenVinoInt8Peer(OpenVinoPeer):
    """OpenVINO on the model quantized by NNCF post-training quantization (nncf.quantize: preset PERFORMANCE, i.e.
    symmetric int8 weights per output channel and activations per tensor, target device CPU, fast bias correction:
    what NNCF picks for a CNN, its model_type naming only transformers), calibrated on `calibration` (HWC inputs, a
    sequence with a length, iterated once: NNCF makes one pass; subset_size = their number). The ops NNCF leaves in
    float run in f32, as the ONNX Runtime int8 peer's do (PRECISION; the plugin's default on a bf16 CPU is bf16)."""

    name = "openvino-int8"

    def __init__(self, state: Mapping[str, np.ndarray], threads: int, calibration: Sequence[np.ndarray]):
        import contextlib
        import io
        import logging

        import nncf
        import openvino  # noqa: F401  (a missing package is said before any work)

        n = len(calibration)
        if n == 0:
            raise ValueError("the OpenVINO int8 peer needs at least one calibration input")
        t0 = time.perf_counter()
        fp32 = _ov_model(state)
        convert_s, t0 = time.perf_counter() - t0, time.perf_counter()
        log = logging.getLogger("nncf")
        level = log.level
        nncf.set_log_level(logging.ERROR)  # NNCF logs each step on the 'nncf' logger
        shown = io.StringIO()
        try:
            with contextlib.redirect_stdout(shown):  # and draws its progress bars (rich) on stdout
                quantized = nncf.quantize(fp32, nncf.Dataset(calibration, _nchw),
                                          preset=nncf.QuantizationPreset.PERFORMANCE,
                                          target_device=nncf.TargetDevice.CPU, subset_size=n)
        except Exception:
            sys.stderr.write(shown.getvalue())  # what it said before failing is what tells why
            raise
        finally:
            log.setLevel(level)
        self.quantize_s = round(time.perf_counter() - t0, 2)
        self.calibration_inputs, self.nncf_version = n, nncf.__version__
        self.fake_quantize = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
        super().__init__(state, threads, quantized)
        self.setup_s = round(self.setup_s + convert_s, 2)  # converting and compiling; quantize_s: nncf.quantize

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "quantization": "NNCF post-training (nncf.quantize), preset PERFORMANCE: "
                                                      "symmetric int8 weights (per output channel) and activations "
                                                      "(per tensor), target device CPU, fast bias correction",
                "nncf_version": self.nncf_version, "fake_quantize_nodes": self.fake_quantize,
                "calibration_inputs": self.calibration_inputs, "quantize_s": self.quantize_s}


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


def _openvino(described: Mapping[str, Any]) -> str | None:
    """'LATENCY hint, f32' (the precision read back from the compiled model), 'NNCF int8, LATENCY hint'."""
    if "hint" not in described:
        return None
    if "quantization" in described:
        return f"NNCF int8, {described['hint']} hint"
    return f"{described['hint']} hint, {described['precision']}"


def _usable() -> str | None:
    return None


@dataclass(frozen=True)
class PeerSpec:
    """One peer: its name, its precision ('fp32', 'bf16', 'int8': the reduced ones report their agreement with fp32
    instead of a check), the modules it imports (which are also the pip packages to install), how to make one, how
    it ran as its describe() says ('jit', '56 NCHWc nodes'), for the label, and whether this CPU can run it at all
    (available(): None, or the reason it cannot, called once its packages import)."""

    name: str
    precision: str
    packages: tuple[str, ...]
    make: Callable[[PeerInputs], Any]
    how: Callable[[Mapping[str, Any]], str | None]
    available: Callable[[], str | None] = _usable

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
    PeerSpec("openvino", "fp32", ("openvino", "onnx"), lambda i: OpenVinoPeer(i.state, i.threads), _openvino),
    PeerSpec("openvino-bf16", "bf16", ("openvino", "onnx"), lambda i: OpenVinoBf16Peer(i.state, i.threads),
             _openvino, _ov_bf16),
    PeerSpec("openvino-int8", "int8", ("openvino", "nncf", "onnx"),
             lambda i: OpenVinoInt8Peer(i.state, i.threads, _calibration(i)), _openvino),
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
    """The peers whose packages are installed here and that this CPU can run, in the order of PEERS."""
    return [s for s in PEERS if all(_importable(m) for m in s.packages) and s.available() is None]


def make(spec: PeerSpec, inputs: PeerInputs) -> Any:
    """One instance of the peer; a package it needs that is not installed is one sentence naming the package to
    install, not an ImportError, and a peer this CPU cannot run is one sentence saying why."""
    try:
        why = spec.available()
        if why is not None:
            raise UserError(f"'{spec.name}' cannot run here: {why}")
        return spec.make(inputs)
    except ImportError as e:
        missing = (getattr(e, "name", None) or spec.packages[0]).split(".")[0]
        raise UserError(f"'{spec.name}' needs the {missing} package, which is not installed here: pip install "
                        f"{missing}") from None
