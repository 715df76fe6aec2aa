"""Agreement between a version's logits and a reference's: the lab's one correctness criterion.

A version agrees when it has the reference's top-5 in the same order and max |delta logit| <= rtol * max |logit|
(rtol 1e-3). On a mismatch the report lists the first few (index, expected, got), as llm.c's checker does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RTOL = 1e-3
TOPK = 5


@dataclass
class Agreement:
    ok: bool
    max_abs_diff: float
    tolerance: float
    top_expected: list[int]
    top_got: list[int]
    report: str


def topk(logits: np.ndarray, k: int = TOPK) -> list[int]:
    """Indices of the k largest logits, largest first (stable for ties)."""
    return [int(i) for i in np.argsort(-logits, kind="stable")[:k]]


def compare(expected: np.ndarray, got: np.ndarray, rtol: float = RTOL, k: int = TOPK, show: int = 5) -> Agreement:
    expected = np.asarray(expected, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        return Agreement(False, float("inf"), 0.0, topk(expected, k), [], f"shape {got.shape} != {expected.shape}")
    if not np.all(np.isfinite(got)):
        bad = np.flatnonzero(~np.isfinite(got))[:show]
        return Agreement(False, float("inf"), 0.0, topk(expected, k), [], f"non-finite logits at {bad.tolist()}")
    diff = np.abs(got - expected)
    tol = rtol * float(np.max(np.abs(expected)))
    te, tg = topk(expected, k), topk(got, k)
    ok = bool(diff.max() <= tol) and te == tg
    lines = [f"max |delta| = {diff.max():.3g} (tolerance {tol:.3g}); top-{k} expected {te}, got {tg}"]
    if not ok:
        for i in np.argsort(-diff)[:show]:
            lines.append(f"  index {i}: expected {expected[i]:.6g}, got {got[i]:.6g}")
    return Agreement(ok, float(diff.max()), tol, te, tg, "\n".join(lines))
