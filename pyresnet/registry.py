"""The one list of the lab's versions, in story order.

Everything else (CLI, tests, bench, diff, info) reads this list; the build discovers the directories
`csrc/vN_name/` by itself, and a test checks that both agree.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType

from .errors import UnknownVersionError


@dataclass(frozen=True)
class Version:
    """One stage of the lab."""

    key: str  # short name: 'py', 'v1', ...
    directory: str | None  # csrc/<directory>; None for the numpy reference
    summary: str  # the one change this stage makes, in a line
    slow: bool = False  # tests give it a single input and bench caps its runs
    threaded: bool = False  # honours threads=N
    original_ms: float | None = None  # the original project's latency for this stage, on its machine

    @property
    def module_name(self) -> str:
        return "pyresnet.numpy_ref" if self.directory is None else f"pyresnet._{self.key}"

    @property
    def number(self) -> int:
        """Story order: 0 for the references, N for vN."""
        m = re.match(r"v(\d+)$", self.key)
        return int(m.group(1)) if m else 0


REGISTRY: tuple[Version, ...] = (
    Version("py", None, "numpy reference: the algorithm stated readably, im2col + np.dot (BLAS threads)"),
    Version("v1", "v1_origin", "plain nested loops, weights read from disk per layer, built at -O0", slow=True,
            original_ms=16923),
    Version("v2", "v2_avx2", "conv2d and fc multiply-accumulate loops in AVX2/FMA intrinsics, built -O3 -ffast-math",
            original_ms=4973),
    Version("v3", "v3_preload", "weights read once, at load, into one contiguous pool; no disk read per inference",
            original_ms=862),
    Version("v4", "v4_no_malloc", "no heap allocation per inference: fixed buffers in the model, pointers set at load",
            original_ms=742),
    Version("v5", "v5_codegen", "conv kernels and forward pass generated at build time, one kernel per layer shape "
            "with the shape as constants", original_ms=781),
    Version("v6", "v6_threads", "every layer split over a persistent thread pool: conv by blocks of output channels",
            threaded=True, original_ms=297),
    Version("v7", "v7_fold", "BatchNorm folded into the conv weights and a bias at load; bias, residual add and ReLU "
            "in the conv's store; pooling loops in channel order", threaded=True),
    Version("v8", "v8_gemm", "the conv as a packed-weight GEMM: weights packed into channel panels at load, a "
            "register-tiled AVX2 micro-kernel, zero-padded inputs for 3x3/7x7", threaded=True),
    Version("v9", "v9_blocked", "cache blocking: conv tasks over L2-sized groups of weight panels x pixel ranges, "
            "pixel tiles outer", threaded=True),
    Version("v10", "v10_avx512", "the same micro-kernel for AVX-512 (32-channel panels, 7-pixel tiles), chosen from "
            "CPUID or forced by isa=/$PYRESNET_ISA", threaded=True),
    Version("v11", "v11_winograd", "the 3x3 stride-1 convs by Winograd F(m x m, 3 x 3): fewer multiplies, transforms "
            "around v10's micro-kernel", threaded=True),
)


def _built(v: Version) -> bool:
    try:
        importlib.import_module(v.module_name)
    except ImportError:
        return False
    return True


def versions() -> list[str]:
    """Names of the versions available in this installation, in story order."""
    return [v.key for v in REGISTRY if _built(v)]


def newest() -> str:
    """The last version of the story built here: what `run` and `profile` use when none is named."""
    return versions()[-1]


def get(name: str) -> Version:
    """Look a version up by key ('v1') or directory name ('v1_origin')."""
    for v in REGISTRY:
        if name in (v.key, v.directory):
            return v
    known = ", ".join(v.key for v in REGISTRY)
    raise UnknownVersionError(f"unknown version '{name}'; the versions are: {known}")


def module(name: str) -> ModuleType:
    """The module implementing a version: its Model class and its ops (conv2d, batchnorm, ...)."""
    v = get(name)
    try:
        return importlib.import_module(v.module_name)
    except ImportError as e:
        raise UnknownVersionError(
            f"version '{v.key}' is not built in this installation ({e}); reinstall with `pip install .`"
        ) from None
