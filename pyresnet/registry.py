"""The one list of the lab's versions, in story order.

Everything else (CLI, tests, bench, diff, info) reads this list; the build discovers the directories
`csrc/vN_name/` by itself, and a test checks that both agree.
"""

from __future__ import annotations

import importlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .errors import UnknownVersionError


# What a stage can do, named once. A stage lists in `adds` what it introduces; every stage built on it keeps it,
# unless a stage declares in `drops` what it gives up (a reduced-precision stage may not run Winograd, say, and
# its README says why), so tests and tools ask `version.has("no_malloc")` and never compare version numbers.
FEATURES = {
    "conv2d": "ops.conv2d: a plain convolution, the network's conv before BatchNorm is folded into it",
    "bn_relu_add": "ops.batchnorm, ops.relu, ops.add: BatchNorm, ReLU and the residual add, each a pass of its own",
    "pool": "ops.maxpool, ops.avgpool: the network's pooling, on float32 activations",
    "preload": "weights read once, at load, and checked there: a bad file fails Model(), not logits()",
    "no_malloc": "an inference allocates nothing (tests/test_no_malloc.py counts)",
    "codegen": "a build-time generator, csrc/vN_name/codegen.py (`pyresnet codegen`)",
    "threads": "honours threads=N with a persistent pool; bitwise the same logits for any count",
    "fused_conv": "ops.conv_fused: the network's conv (BatchNorm folded, bias/residual/ReLU in the store) alone",
    "isa": "kernels for several instruction sets, chosen from CPUID; option isa='avx2' | 'avx512' | 'auto'",
    "winograd": "the 3x3 stride-1 convs by Winograd; option winograd=True | False; ops.conv_winograd",
    "batch": "Model.logits takes a batch (N, 224, 224, 3) natively (the others loop over its images)",
    "bf16": "weights and activations in bfloat16 between layers, fp32 accumulation (agreement, not 1e-3, is its bar)",
    "int8": "int8 weights and uint8 activations scaled by the weights' calibration (`pyresnet calibrate`)",
    "int8_winograd": "the int8 3x3 stride-1 convs by an exact integer Winograd F(2x2, 3x3): the direct path's bits; "
                     "option winograd=True | False; ops.conv_int8(..., winograd=True)",
    "weight_bits": "option weight_bits=7 | 8: 7-bit int8 weights, which vpmaddubsw sums exactly (the default on the "
                   "paths without VNNI), or 8-bit ones (avx512_vnni's default)",
}
# Native options of pyresnet.load(version, ..., **options), each available in the stages that have one of its
# features.
OPTIONS = {"isa": ("isa",), "winograd": ("winograd", "int8_winograd"), "max_batch": ("batch",),
           "weight_bits": ("weight_bits",)}


@dataclass(frozen=True)
class Version:
    """One stage of the lab."""

    key: str  # short name: 'py', 'v1', ...
    directory: str | None  # csrc/<directory>; None for the numpy reference
    summary: str  # the one change this stage makes, in a line
    slow: bool = False  # tests give it a single input and bench caps its runs
    adds: frozenset[str] = frozenset()  # FEATURES this stage introduces (the py reference: the ones it has)
    drops: frozenset[str] = frozenset()  # FEATURES of its base that this one, and every stage built on it, gives up
    original_ms: float | None = None  # the original project's latency for this stage, on its machine
    base: str | None = None  # the stage this one builds on, when it is not the one before (a sibling branch)
    # A stage kept for what it enables rather than for its speed (slower than the stage before it): newest() passes
    # over it, so `run`, `eval` and `profile` default to a faster stage; it is asked for by name.
    stepping_stone: bool = False

    @property
    def module_name(self) -> str:
        return "pyresnet.reference.numpy_ref" if self.directory is None else f"pyresnet._{self.key}"

    @property
    def number(self) -> int:
        """Story order: 0 for the references, N for vN."""
        m = re.match(r"v(\d+)$", self.key)
        return int(m.group(1)) if m else 0

    @property
    def builds_on(self) -> "Version | None":
        """The stage whose directory this one was made from: `base` when set, else the previous compiled stage."""
        if self.directory is None:
            return None
        if self.base is not None:
            return get(self.base)
        return next((v for v in REGISTRY if v.directory is not None and v.number == self.number - 1), None)

    @property
    def features(self) -> frozenset[str]:
        """What this stage can do: what it adds and, for a compiled stage, what the stage it builds on could do,
        less what it drops."""
        if self.directory is None:
            return self.adds
        base = self.builds_on
        inherited = base.features if base is not None else frozenset()
        return (inherited - self.drops) | self.adds

    def has(self, feature: str) -> bool:
        if feature not in FEATURES:
            raise KeyError(f"unknown feature '{feature}'; the features are: {', '.join(FEATURES)}")
        return feature in self.features

    @property
    def precision(self) -> str:
        """'fp32', or the reduced precision of the stage ('bf16', 'int8'): an fp32 stage is held to the oracle's
        1e-3, a reduced one to its agreement with fp32 (tests/test_reduced.py, `pyresnet agree`)."""
        return next((p for p in ("int8", "bf16") if self.has(p)), "fp32")

    @property
    def threaded(self) -> bool:
        """Honours threads=N (the py reference uses BLAS's threads, not ours)."""
        return self.has("threads")

    @property
    def frozen(self) -> frozenset[str]:
        """The files of this stage's directory it is the origin of (FROZEN)."""
        return frozenset(path for path, origins in FROZEN.items() if self.key in origins)

    @property
    def options(self) -> tuple[str, ...]:
        """The native options pyresnet.load() passes through for this stage."""
        return tuple(o for o, features in OPTIONS.items() if any(self.has(f) for f in features))


def _adds(*features: str) -> frozenset[str]:
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise KeyError(f"unknown features {sorted(unknown)}")
    return frozenset(features)


REGISTRY: tuple[Version, ...] = (
    Version("py", None, "numpy reference: the algorithm stated readably, im2col + np.dot (BLAS threads)",
            adds=_adds("conv2d", "bn_relu_add", "pool")),
    Version("v1", "v1_origin", "plain nested loops, weights read from disk per layer, built at -O0", slow=True,
            adds=_adds("conv2d", "bn_relu_add", "pool"), original_ms=16923),
    Version("v2", "v2_avx2", "conv2d and fc multiply-accumulate loops in AVX2/FMA intrinsics, built -O3 -ffast-math",
            original_ms=4973),
    Version("v3", "v3_preload", "weights read once, at load, into one contiguous pool; no disk read per inference",
            adds=_adds("preload"), original_ms=862),
    Version("v4", "v4_no_malloc", "no heap allocation per inference: fixed buffers in the model, pointers set at load",
            adds=_adds("no_malloc"), original_ms=742),
    Version("v5", "v5_codegen", "conv kernels and forward pass generated at build time, one kernel per layer shape "
            "with the shape as constants", adds=_adds("codegen"), original_ms=781),
    Version("v6", "v6_threads", "every layer split over a persistent thread pool: conv by blocks of output channels",
            adds=_adds("threads"), original_ms=297),
    Version("v7", "v7_fold", "BatchNorm folded into the conv weights and a bias at load; bias, residual add and ReLU "
            "in the conv's store; pooling loops in channel order", drops=frozenset({"conv2d", "bn_relu_add"})),
    Version("v8", "v8_gemm", "the conv as a packed-weight GEMM: weights packed into channel panels at load, a "
            "register-tiled AVX2 micro-kernel, zero-padded inputs for 3x3/7x7", adds=_adds("fused_conv")),
    Version("v9", "v9_blocked", "cache blocking: conv tasks over L2-sized groups of weight panels x pixel ranges, "
            "pixel tiles outer"),
    Version("v10", "v10_avx512", "the same micro-kernel for AVX-512 (32-channel panels, 7-pixel tiles), chosen from "
            "CPUID or forced by isa=/$PYRESNET_ISA", adds=_adds("isa")),
    Version("v11", "v11_winograd", "the 3x3 stride-1 convs by Winograd F(m x m, 3 x 3): fewer multiplies, transforms "
            "around v10's micro-kernel", adds=_adds("winograd")),
    Version("v12", "v12_batch", "a batch-aware GEMM for layer4: its pixels span the images of a batch (max_batch, "
            "default 8), so each packed weight panel is loaded once per batch instead of once per image",
            adds=_adds("batch")),
    Version("v13", "v13_direct", "every 3x3 conv direct again (Winograd removed): slower than v12, kept as the base "
            "of the bf16 and int8 stages, which cannot use Winograd's transforms",
            drops=frozenset({"winograd"}), stepping_stone=True),
    Version("v14", "v14_bf16", "bfloat16 weights and activations with fp32 accumulation: vdpbf16ps on AVX512_BF16 "
            "(else bf16 widened to fp32 and FMA)", adds=_adds("bf16"), drops=frozenset({"pool"})),
    Version("v15", "v15_int8", "post-training static quantization: int8 weights per output channel, uint8 "
            "activations scaled by the calibration, int32 sums by vpdpbusd (AVX512_VNNI) or exact vpmaddwd; fc stays "
            "fp32", adds=_adds("int8"), drops=frozenset({"fused_conv", "pool"}), base="v13"),
    Version("v16", "v16_int8_7bit", "7-bit weights where the CPU has no VNNI: vpmaddubsw then vpmaddwd, exact at "
            "2 x 255 x 64, in place of the widening vpmaddwd pair (option weight_bits=7 | 8)",
            adds=_adds("weight_bits")),
    Version("v17", "v17_int8_winograd", "the int8 3x3 stride-1 convs by Winograd F(2x2, 3x3) in integers: int16 "
            "transforms, int16 GEMMs (vpdpwssd, or vpmaddwd), exact, so bitwise the direct path's logits",
            adds=_adds("int8_winograd")),
    Version("v18", "v18_bf16_winograd", "the bf16 3x3 stride-1 convs by Winograd F(m x m, 3 x 3): fp32 transforms, "
            "V and U rounded to bf16, v14's bf16 GEMMs (vdpbf16ps, or its emulation) with fp32 output",
            adds=_adds("winograd"), base="v14"),
)


# Frozen files. For each file that some stage copies unchanged from an earlier one: the stages whose version of it is
# their own (the stage that introduces it, and every later one that changes it). Every other stage on the builds_on
# chain that has the file holds a byte-identical copy of the nearest such stage's: the thread pool of the stage that
# introduced threads, the weight reader of the one that preloads. pyresnet/instruments/frozen.py checks the copies;
# `pyresnet frozen --sync` copies a fix made in the origin forward.
FROZEN: dict[str, tuple[str, ...]] = {
    # the network
    "network.h": ("v1", "v3", "v4", "v5", "v6", "v7", "v8", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18"),
    "network.cpp": ("v1", "v3", "v4", "v5", "v6", "v7", "v8", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18"),
    # the frame of a stage: binding, declarations of the ops, build, weight reader, thread pool
    "binding.cpp": ("v1", "v7", "v8", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18"),
    "ops.h": ("v1", "v4", "v7", "v14", "v15"),
    "CMakeLists.txt": ("v2", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18"),
    "weights.h": ("v1", "v3"),
    "weights.cpp": ("v1", "v3"),
    "threadpool.h": ("v6",),
    # the ops and the generator
    "codegen.py": ("v8", "v11", "v12", "v13", "v14", "v15", "v17", "v18"),
    "ops/add.cpp": ("v1",),
    "ops/batchnorm.cpp": ("v1",),
    "ops/relu.cpp": ("v1",),
    "ops/conv2d.cpp": ("v2",),
    "ops/maxpool.cpp": ("v1", "v7", "v14", "v15"),
    "ops/avgpool.cpp": ("v1", "v7", "v14", "v15"),
    "ops/fc.cpp": ("v2",),
    "ops/conv_fused.cpp": ("v9", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18"),
    "ops/conv_task.h": ("v9", "v12", "v14", "v15"),
    "ops/microkernel.h": ("v8", "v14", "v15", "v16", "v18"),
    "ops/pack.cpp": ("v8", "v12", "v14", "v15"),
    "ops/kernels_avx2.cpp": ("v8", "v10", "v11", "v13", "v14", "v15", "v16", "v17", "v18"),
    "ops/kernels_avx512.cpp": ("v11", "v13", "v14", "v15", "v16", "v17", "v18"),
    "ops/dispatch.cpp": ("v10", "v14", "v15", "v16"),
    "ops/winograd_pack.cpp": ("v11", "v17", "v18"),
}


def _built(v: Version) -> bool:
    try:
        importlib.import_module(v.module_name)
    except ImportError:
        return False
    return True


def shadowed_source(package_dir: Path, built: list[str]) -> str | None:
    """The sentence to say when Python imported pyresnet from a source checkout that holds no compiled version.

    `python` started inside a checkout imports ./pyresnet before an installed (non-editable) copy, and the
    checkout's package has no built modules: versions() would silently be ['py'].
    """
    root = package_dir.parent
    if any(k != "py" for k in built) or not ((root / "pyproject.toml").is_file() and (root / "csrc").is_dir()):
        return None
    return (f"pyresnet was imported from the source checkout {root}, where no C++ version is built, so only 'py' "
            "is available: run from another directory to use the installed copy, or build this checkout with "
            "`pip install -e .`")


_warned = False


def versions() -> list[str]:
    """Names of the versions available in this installation, in story order."""
    global _warned
    built = [v.key for v in REGISTRY if _built(v)]
    why = shadowed_source(Path(__file__).resolve().parent, built)
    if why and not _warned:
        _warned = True
        warnings.warn(why, RuntimeWarning, stacklevel=2)
    return built


def newest() -> str:
    """The newest full-precision (fp32) stage built here that is not a stepping stone: what `run`, `eval` and
    `profile` use when none is named. The reduced-precision stages after it are asked for by name: their answers
    differ a little from fp32's, and the int8 one needs a calibration of the weights first. A stepping stone (the
    direct stage under them) is slower than the stage before it, so it is asked for by name too."""
    return [v for v in versions() if get(v).precision == "fp32" and not get(v).stepping_stone][-1]


def get(name: str) -> Version:
    """Look a version up by key ('v1') or directory name ('v1_origin'); a name that is not a str is a TypeError."""
    if not isinstance(name, str):
        raise TypeError(f"a version is named by a str such as 'v1', got {type(name).__name__} {name!r}")
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
