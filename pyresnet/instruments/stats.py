"""How sure a bench figure is: a 95% interval for each row's median latency and for the ratio of two rows' medians,
by bootstrap over the rounds of an interleaved run.

The host's speed changes in steps that last many calls, so the samples of one round are not independent of each
other: a slow stretch moves them together. The unit that is resampled is therefore the round, not the call. Rows
measured in the same rounds are resampled with the same draws, so a ratio between them keeps the pairing that
interleaving bought (a slow round slows both sides of it); a row measured in fewer rounds (a slow version, which
makes one call a round) is resampled over its own rounds. A results file without rounds (measured one row after
another) has each sample resampled alone, which says less than it seems to: its intervals are too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DRAWS = 1000  # bootstrap replicates
SEED = 0  # the draws are seeded: a results file renders the same intervals every time
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi


def _rounds(row: dict[str, Any]) -> list[np.ndarray]:
    """A row's samples grouped by the round they were taken in (each sample alone when the file has no rounds)."""
    samples = np.asarray(row["samples_ms"], dtype=np.float64)
    rounds = row.get("sample_rounds") or []
    if len(rounds) != len(samples):
        return [samples[i:i + 1] for i in range(len(samples))]
    keys = sorted(set(rounds))
    r = np.asarray(rounds)
    return [samples[r == k] for k in keys]


def _replicates(groups: list[np.ndarray], draws: np.ndarray) -> np.ndarray:
    """The pooled median of the groups picked by each row of `draws` (indices into groups)."""
    width = max(len(g) for g in groups)
    table = np.full((len(groups), width), np.nan)
    for i, g in enumerate(groups):
        table[i, :len(g)] = g
    picked = table[draws].reshape(len(draws), -1)
    return np.nanmedian(picked, axis=1)


def replicates(rows: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """DRAWS bootstrap replicates of each row's median latency; rows with the same rounds share their draws."""
    rng = np.random.default_rng(SEED)
    shared: dict[tuple[int, ...], np.ndarray] = {}
    out = []
    for row in rows:
        groups = _rounds(row)
        key = tuple(sorted(set(row.get("sample_rounds") or []))) or (-len(groups),)
        if key not in shared:
            shared[key] = rng.integers(0, len(groups), size=(DRAWS, len(groups)))
        out.append(_replicates(groups, shared[key]))
    return out


def interval(values: np.ndarray) -> Interval:
    """The central LEVEL interval of bootstrap replicates."""
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return Interval(float(lo), float(hi))


def ratio_interval(num: np.ndarray, den: np.ndarray) -> Interval:
    """The interval of num / den (replicates drawn together, when the two rows shared their rounds)."""
    return interval(num / den)
