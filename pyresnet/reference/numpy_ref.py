"""Version `py`: ResNet-50 in numpy, the readable statement of the algorithm and a second reference.

Layouts as in every C++ version: activations HWC (batch 1), conv weights OHWI, fc weights [out, in].
Convolution is im2col + one matrix product (np.dot), as the original's Python version did: every K x K x Cin
input window becomes a row of a matrix, and the conv is that matrix times the weights viewed as (Cout, K*K*Cin).

The ops below have the same names, arguments and checks as the ops each compiled module exposes, so a test or a
learner can call `pyresnet.ops('py').conv2d(...)` and `pyresnet.ops('v1').conv2d(...)` the same way.
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from .. import arch

FLAGS = "numpy " + np.__version__
COMPILER = "n/a"


def _check(x: np.ndarray, what: str, ndim: int) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise ValueError(f"{what}: expected a float32 array, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dimensions, got {x.ndim}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{what}: array must be C-contiguous (use numpy.ascontiguousarray)")
    if 0 in x.shape:
        raise ValueError(f"{what}: empty array")


def _window(x: np.ndarray, kernel: int, stride: int, pad: int, op: str) -> None:
    if kernel < 1 or stride < 1 or pad < 0 or pad >= kernel:
        raise ValueError(f"{op}: need kernel >= 1, stride >= 1 and 0 <= pad < kernel")
    if x.shape[0] + 2 * pad < kernel or x.shape[1] + 2 * pad < kernel:
        raise ValueError(f"{op}: the {kernel}x{kernel} window does not fit the padded input")


def _windows(xp: np.ndarray, kernel: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """A (ho, wo, kernel, kernel, C) strided view of every input window of a padded HWC array (no copy)."""
    sh, sw, sc = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (ho, wo, kernel, kernel, xp.shape[2]), (sh * stride, sw * stride, sh, sw, sc), writeable=False
    )


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int = 1, pad: int = 0, *, _check_args: bool = True) -> np.ndarray:
    """x (H, W, Cin), weight (Cout, K, K, Cin) -> (Ho, Wo, Cout), no bias."""
    if _check_args:
        _check(x, "conv2d input", 3)
        _check(weight, "conv2d weight (OHWI)", 4)
        if weight.shape[1] != weight.shape[2]:
            raise ValueError("conv2d weight (OHWI): kernel must be square")
        if weight.shape[3] != x.shape[2]:
            raise ValueError(f"conv2d weight (OHWI): has {weight.shape[3]} input channels, input has {x.shape[2]}")
        _window(x, weight.shape[1], stride, pad, "conv2d")
    cout, k = weight.shape[0], weight.shape[1]
    h, w, cin = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0))) if pad else x
    cols = _windows(xp, k, stride, ho, wo).reshape(ho * wo, k * k * cin)  # im2col: one row per output pixel
    return np.dot(cols, weight.reshape(cout, k * k * cin).T).reshape(ho, wo, cout)


def batchnorm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
              eps: float = arch.BN_EPS, *, _check_args: bool = True) -> np.ndarray:
    """Inference BatchNorm over the channels of x (H, W, C)."""
    if _check_args:
        _check(x, "batchnorm input", 3)
        for a, what in ((mean, "running_mean"), (var, "running_var"), (gamma, "weight"), (beta, "bias")):
            _check(a, f"batchnorm {what}", 1)
            if a.shape[0] != x.shape[2]:
                raise ValueError(f"batchnorm {what}: expected {x.shape[2]} values, got {a.shape[0]}")
    return (x - mean) / np.sqrt(var + x.dtype.type(eps)) * gamma + beta


def relu(x: np.ndarray) -> np.ndarray:
    _check(x, "relu input", 3)
    return np.maximum(x, 0)


def maxpool(x: np.ndarray, kernel: int = 3, stride: int = 2, pad: int = 1, *, _check_args: bool = True) -> np.ndarray:
    """Max over kernel x kernel windows; padding acts as -infinity."""
    if _check_args:
        _check(x, "maxpool input", 3)
        _window(x, kernel, stride, pad, "maxpool")
    h, w, _ = x.shape
    ho, wo = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
    return _windows(xp, kernel, stride, ho, wo).max(axis=(2, 3))


def avgpool(x: np.ndarray) -> np.ndarray:
    """Global average pool (H, W, C) -> (C,)."""
    _check(x, "avgpool input", 3)
    return x.mean(axis=(0, 1), dtype=x.dtype)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _check(a, "add input a", 3)
    _check(b, "add input b", 3)
    if a.shape != b.shape:
        raise ValueError("add: inputs have different shapes")
    return a + b


def fc(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x (Cin,), weight (Cout, Cin), bias (Cout,) -> (Cout,)."""
    _check(x, "fc input", 1)
    _check(weight, "fc weight [out, in]", 2)
    _check(bias, "fc bias", 1)
    if weight.shape[1] != x.shape[0]:
        raise ValueError(f"fc weight [out, in]: has {weight.shape[1]} inputs, input has {x.shape[0]}")
    if bias.shape[0] != weight.shape[0]:
        raise ValueError(f"fc bias: expected {weight.shape[0]} values, got {bias.shape[0]}")
    return weight @ x + bias


class Model:
    """ResNet-50 over a state dict of numpy arrays (the weights format's names and layouts).

    Works in the dtype of the state (float32 normally; the random-weights generator runs it in float64).
    Stateless during inference, so one instance can serve several threads.
    """

    def __init__(self, state: Mapping[str, np.ndarray]):
        from ..machine import cpus_allowed

        self.state = state
        self.threads = cpus_allowed()  # np.dot runs on BLAS's own threads, one per allowed CPU by default

    def bn(self, y: np.ndarray, conv: arch.Conv) -> np.ndarray:
        s = self.state
        return batchnorm(y, s[f"{conv.bn}.running_mean"], s[f"{conv.bn}.running_var"], s[f"{conv.bn}.weight"],
                         s[f"{conv.bn}.bias"], _check_args=False)

    def conv_bn(self, x: np.ndarray, conv: arch.Conv, relu_after: bool, prof: list | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        y = conv2d(x, self.state[f"{conv.name}.weight"], conv.stride, conv.pad, _check_args=False)
        y = self.bn(y, conv)
        y = np.maximum(y, 0) if relu_after else y
        _record(prof, t0, conv.name, f"conv{conv.kernel}x{conv.kernel}{f'/s{conv.stride}' if conv.stride > 1 else ''}"
                f"+bn{'+relu' if relu_after else ''}", y.shape, 2.0 * conv.macs)
        return y

    def add_relu(self, out: np.ndarray, shortcut: np.ndarray, block: arch.Block) -> np.ndarray:
        """A block's output: its residual branch plus the shortcut, then ReLU."""
        return np.maximum(out + shortcut, 0)

    def logits(self, x: np.ndarray, prof: list | None = None) -> np.ndarray:
        """x float32 (224, 224, 3) -> (1000,); with `prof` a list, one record per layer is appended to it."""
        _check(x, "logits input", 3)
        if x.shape != (arch.INPUT, arch.INPUT, 3):
            raise ValueError(f"logits input: expected shape (224, 224, 3), got {x.shape}")
        dtype = self.state["fc.weight"].dtype
        x = self.conv_bn(x.astype(dtype, copy=False), arch.stem(), True, prof)  # 112x112x64
        t0 = time.perf_counter()
        x = maxpool(x, 3, 2, 1, _check_args=False)  # 56x56x64
        _record(prof, t0, "maxpool", "maxpool3x3/s2", x.shape, 9.0 * x.size)
        for b in arch.blocks():
            out = self.conv_bn(x, b.conv1, True, prof)
            out = self.conv_bn(out, b.conv2, True, prof)
            out = self.conv_bn(out, b.conv3, False, prof)
            shortcut = self.conv_bn(x, b.downsample, False, prof) if b.downsample else x
            t0 = time.perf_counter()
            x = self.add_relu(out, shortcut, b)
            _record(prof, t0, f"{b.prefix}.add", "add+relu", x.shape, float(x.size))
        t0 = time.perf_counter()
        features = x.mean(axis=(0, 1))  # 2048
        _record(prof, t0, "avgpool", "avgpool", (1, 1, x.shape[2]), float(x.size))
        t0 = time.perf_counter()
        out = (self.state["fc.weight"] @ features + self.state["fc.bias"]).astype(dtype)
        _record(prof, t0, "fc", "fc", (1, 1, arch.CLASSES), 2.0 * arch.CLASSES * arch.FC_IN)
        return out

    def profile(self, x: np.ndarray) -> list:
        """One forward pass with per-layer timers: [(name, op, (h, w, c), flops, ms), ...], like the C++ versions."""
        prof: list = []
        self.logits(x, prof)
        return prof


def _record(prof: list | None, t0: float, name: str, op: str, shape: tuple, flops: float) -> None:
    if prof is not None:
        prof.append((name, op, tuple(int(d) for d in shape), flops, (time.perf_counter() - t0) * 1e3))
