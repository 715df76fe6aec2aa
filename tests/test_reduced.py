"""The reduced-precision stages (registry precision 'bf16' or 'int8') as whole networks: agreement with the torch
fp32 oracle on real photos, measured against PyTorch's own reduced precision on the same inputs, and bitwise
identical logits for any thread count and batch size.

A version takes part when its registry precision is not 'fp32'; no test code is needed for a new one, only its
precision's bounds in BOUNDS (a precision without bounds fails, saying so), or where its agreement is tested
instead in AGREEMENT_ELSEWHERE (int8: its calibration images must be kept apart from the evaluation photos).

Inputs: the photos of conftest.IMAGES and four seeded variants of each (pyresnet.accuracy.agree: mirrored, two
crops, half size), preprocessed, on the session's random weights (seed 0). Randomised weights give flat logits (the
largest logit is close to many others), so top-1 agreement is fragile and the bounds are loose there; the
relative logit error is the sharper measure.

Bounds, per precision, from measurements on the 11 photos of ../shared/images (55 inputs), random weights seed 0,
AMD EPYC Zen 4, 2 threads (README.md of the bf16 stage):
  bf16: the bf16 stage, the same on its 'avx512_bf16' and 'avx2' paths: top-1 agreement 1.0, top-5 overlap 0.993, relative
        max |logit difference| median 0.0118, max 0.049; PyTorch bf16 autocast (`pytorch-bf16`) on the same
        inputs: top-1 1.0, top-5 0.993, median 0.0149, max 0.059.
  The bounds leave room for another CPU's order of fp32 sums and for flatter logits (top-1 0.9), not for a bug: a
  mis-rounded or mis-paired layer moves the relative error by an order of magnitude or more. A bf16 stage must also
  be at least as close to fp32 as PyTorch's bf16 on the same inputs (top-5 overlap, less one top-5 miss over all
  the inputs; median relative difference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pyresnet
from pyresnet import registry
from pyresnet.accuracy import agree as agreement
from pyresnet.machine import cpu_flags

from conftest import IMAGES, noise, photos

REDUCED = [v for v in pyresnet.versions() if registry.get(v).precision != "fp32"]
pytestmark = pytest.mark.skipif(not REDUCED, reason="no reduced-precision stage built")

# precision -> (least top-1 agreement, least mean top-5 overlap, largest median and largest maximum relative
# |logit difference|) against the fp32 oracle. Measured values in the docstring.
BOUNDS = {"bf16": (0.9, 0.95, 0.02, 0.08)}
# Precisions whose whole-network agreement is tested elsewhere, because it needs more than these photos.
AGREEMENT_ELSEWHERE = {"int8": "tests/test_int8.py: against ONNX Runtime int8, on photos kept apart from the "
                               "calibration images"}
# The paths of a precision's stage on this CPU (the emulated ones test the same kernel logic as the fast one).
FLAGS = cpu_flags()
PATHS = {"bf16": [isa for isa, flag in (("avx2", "avx2"), ("avx512", "avx512f"), ("avx512_bf16", "avx512_bf16"))
                  if flag in FLAGS],
         "int8": [isa for isa, flag in (("avx2", "avx2"), ("avx512", "avx512bw"), ("avx512_vnni", "avx512_vnni"))
                  if flag in FLAGS]}


def cases(agreement: bool = False) -> list:
    """(version, isa path) for every reduced stage and path this CPU has; for the agreement test, the stages whose
    agreement is not tested elsewhere."""
    return [pytest.param(v, isa, id=f"{v}-{isa}") for v in REDUCED
            if not (agreement and registry.get(v).precision in AGREEMENT_ELSEWHERE)
            for isa in PATHS.get(registry.get(v).precision, [None])]


@pytest.fixture(scope="module")
def peer_bf16(weights_dir: Path) -> dict:
    """PyTorch's bf16 (autocast) against the oracle on the same inputs: the bar a bf16 stage should meet."""
    if not photos():
        pytest.skip(f"no photos in {IMAGES}")
    return agreement.agree("pytorch-bf16", "oracle", photos(), weights=str(weights_dir), threads=2, progress=False)


@pytest.mark.parametrize("version,isa", cases(agreement=True))
def test_agrees_with_fp32_on_photos(version: str, isa: str | None, weights_dir: Path, monkeypatch, peer_bf16) -> None:
    precision = registry.get(version).precision
    if precision not in BOUNDS:
        pytest.fail(f"no agreement bounds for precision '{precision}': measure them and add them to BOUNDS")
    if isa is not None:
        monkeypatch.setenv("PYRESNET_ISA", isa)
    got = agreement.agree(version, "oracle", photos(), weights=str(weights_dir), threads=2, progress=False)
    top1, top5, rel_med, rel_max = BOUNDS[precision]
    summary = {k: round(got[k], 4) for k in ("top1", "top5_overlap", "rel_diff_median", "rel_diff_max")}
    peer = {k: round(peer_bf16[k], 4) for k in summary}
    assert got["inputs"] == 5 * len(photos())
    assert got["top1"] >= top1 and got["top5_overlap"] >= top5, (summary, peer)
    assert got["rel_diff_median"] <= rel_med and got["rel_diff_max"] <= rel_max, (summary, peer)
    if precision == "bf16":  # at least as close to fp32 as PyTorch's own bf16 on the same inputs
        assert got["top5_overlap"] >= peer_bf16["top5_overlap"] - 1 / (5 * got["inputs"]), (summary, peer)
        assert got["rel_diff_median"] <= peer_bf16["rel_diff_median"], (summary, peer)


@pytest.mark.parametrize("version,isa", cases())
def test_bitwise_for_any_thread_count_and_batch(version: str, isa: str | None, weights_of) -> None:
    weights_dir = weights_of(version)
    kw = {} if isa is None else {"isa": isa}
    x = np.stack([noise(s) for s in (21, 22, 23, 24, 25)])
    ref = pyresnet.load(version, weights=weights_dir, threads=1, max_batch=1, **kw).logits(x)
    assert np.isfinite(ref).all() and ref.shape == (5, 1000)
    for threads, max_batch in ((2, 5), (3, 2), (3, 8)):
        m = pyresnet.load(version, weights=weights_dir, threads=threads, max_batch=max_batch, **kw)
        assert np.array_equal(m.logits(x), ref), (threads, max_batch)
        assert np.array_equal(m.logits(x[3]), ref[3]), (threads, max_batch)  # one image alone
