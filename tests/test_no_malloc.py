"""Stages with the registry's "no_malloc" feature (v4_no_malloc and every later one) allocate nothing per
inference; and v4's memory is the weights plus fixed buffers. Stages with the "batch" feature are counted on a batch
call as well: 3 images on a model with max_batch=2, so that the split into chunks is counted too.

Allocations are counted by tests/malloc_counter.c, a small library preloaded into a child Python (LD_PRELOAD) that
interposes malloc and friends and counts the calls made by threads that do not hold the GIL while counting is on.
The bindings release the GIL exactly around the C++ forward pass, so the count is the inference path's own,
without pybind11's argument handling or numpy's output array. Versions before v4 must show allocations (one
vector per layer), which also proves that the counter counts; the allocation-free ones must show none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyresnet import registry

REPO = Path(__file__).resolve().parent.parent
COMPILED = [v for v in registry.REGISTRY if v.directory]
# Under AddressSanitizer (LD_PRELOAD=libasan.so) ASan owns malloc and inflates resident memory: neither test applies.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")

ALLOC_CHILD = r"""
import ctypes, json, sys
import numpy as np
import pyresnet

lib_path, version, weights_dir, warm, threads = sys.argv[1:6]
lib = ctypes.PyDLL(lib_path)  # the preloaded copy; PyDLL keeps the GIL during these calls, so they are not counted
lib.malloc_counter_allocs.restype = ctypes.c_ulong
lib.malloc_counter_frees.restype = ctypes.c_ulong
m = pyresnet.load(version, weights=weights_dir, threads=int(threads))
x = np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
batched = pyresnet.registry.get(version).has("batch")
if batched:  # a batch of 3 on max_batch 2: two chunks, the second short
    mb = pyresnet.load(version, weights=weights_dir, threads=int(threads), max_batch=2)
    xb = np.stack([x, -x, 0.5 * x])
if warm == "1":
    m.logits(x)  # a first call may set things up (later stages: thread pools); we count the steady state
    if batched:
        mb.logits(xb)
if lib.malloc_counter_start() != 0:
    sys.exit("malloc_counter: PyGILState_Check not found in the process")
y = m.logits(x)
yb = mb.logits(xb) if batched else y
lib.malloc_counter_stop()
print(json.dumps({"allocs": lib.malloc_counter_allocs(), "frees": lib.malloc_counter_frees(),
                  "finite": bool(np.isfinite(y).all() and np.isfinite(yb).all()), "batch": list(yb.shape)}))
"""


@pytest.fixture(scope="module")
def counter_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/malloc_counter.c built as a shared library; skips when there is no C compiler."""
    if UNDER_ASAN:
        pytest.skip("AddressSanitizer owns malloc in this process; the counter cannot interpose it")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler (cc) to build tests/malloc_counter.c")
    lib = tmp_path_factory.mktemp("malloc_counter") / "libcount.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(REPO / "tests" / "malloc_counter.c"),
                        "-ldl"], capture_output=True, text=True)
    assert r.returncode == 0, f"building malloc_counter.c failed:\n{r.stderr}"
    return lib


def count_allocations(lib: Path, version: str, weights_dir: Path, warm: bool, threads: int = 1) -> dict:
    env = {**os.environ, "LD_PRELOAD": str(lib)}
    r = subprocess.run([sys.executable, "-c", ALLOC_CHILD, str(lib), version, str(weights_dir), "1" if warm else "0",
                        str(threads)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("v", COMPILED, ids=lambda v: v.key)
def test_allocations_per_inference(v: registry.Version, counter_lib: Path, weights_of) -> None:
    # A slow version (v1, about 15 s an image) skips the warm-up: it only has to show that it does allocate.
    # A threaded version runs on 3 threads, so handing work to its pool (and the workers' side) is observed too:
    # the workers do not hold the GIL, so whatever they allocate is counted.
    got = count_allocations(counter_lib, v.key, weights_of(v.key), warm=not v.slow, threads=3 if v.threaded else 1)
    assert got["finite"], f"{v.key} returned non-finite logits"
    assert got["batch"] == ([3, 1000] if v.has("batch") else [1000]), got  # the batch call was made and counted
    if v.has("no_malloc"):
        assert got["allocs"] == 0 and got["frees"] == 0, f"{v.key} allocates during an inference: {got}"
    else:
        assert got["allocs"] > 0, f"{v.key} should allocate per inference (or the counter is not counting): {got}"


RSS_CHILD = r"""
import ctypes, json, sys
import numpy as np
import pyresnet
from pyresnet import registry

registry.module("v4")  # the extension module is loaded before the first reading, like numpy and pyresnet

def rss() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")

try:
    trim = ctypes.CDLL(None).malloc_trim  # glibc: give freed heap memory back to the system
except (OSError, AttributeError):
    trim = None

x = np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
before = rss()
m = pyresnet.load("v4", weights=sys.argv[1], threads=1)
loaded = rss()
m.logits(x)  # buffers a version touched only when it first runs would not show in `loaded`
ran = rss()
if trim:
    trim(0)
trimmed = rss()
print(json.dumps({"loaded": loaded - before, "ran": ran - before, "trimmed": trimmed - before,
                  "trim": bool(trim)}))
"""


@pytest.mark.skipif(UNDER_ASAN, reason="AddressSanitizer's shadow memory and allocator inflate resident memory")
def test_resident_memory_after_loading_v4(weights_dir: Path) -> None:
    """v4 holds the weights once, plus its activation buffers (about 13 MB): within weights + 32 MB of RSS.

    Measured in a fresh process, after an inference as well as after loading, so that memory touched late counts.
    pyresnet.load() first validates the files in Python (weights.check(keep=False)): it reads every tensor and drops
    it, and glibc keeps some of that freed memory in its heap (about 9 MB here: the mmap threshold rises after the
    first large free, so later blocks come from the heap). That memory is not the model's but it is resident, so
    the limit applies to the untrimmed growth; the trimmed figure (after malloc_trim) must still hold every weight,
    or the measurement is not seeing the model at all.
    """
    weights_bytes = sum(f.stat().st_size for f in Path(weights_dir).glob("*.bin"))
    r = subprocess.run([sys.executable, "-c", RSS_CHILD, str(weights_dir)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    mb = {k: round(v / 1e6, 1) for k, v in got.items() if k != "trim"}
    limit = weights_bytes + 32_000_000
    assert got["ran"] <= limit, f"v4 grows RSS by {mb} MB; weights are {weights_bytes / 1e6:.1f} MB, limit +32 MB"
    assert got["loaded"] <= limit, mb
    if got["trim"]:
        assert got["trimmed"] >= weights_bytes, f"RSS growth {mb} MB does not even hold the weights"
