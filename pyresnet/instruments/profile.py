"""`pyresnet profile`: where the time goes, layer by layer, from timers compiled into every version's forward pass.

Each version's model has profile(x), one forward pass that returns (name, op, output shape, flops, ms) per layer
(conv+BN(+ReLU) counts as one layer, as does add+ReLU). The timers are off in logits(), so they cost nothing there.
We run `runs` profiled passes after one warm-up and report the median per layer.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from ..model import Model


@dataclass
class Layer:
    name: str
    op: str
    shape: tuple[int, int, int]
    flops: float
    ms: float

    @property
    def gflops(self) -> float:
        return self.flops / (self.ms * 1e6) if self.ms > 0 else 0.0


def profile(model: Model, x: np.ndarray, runs: int = 3) -> list[Layer]:
    """Median per-layer times over `runs` profiled forward passes (after one warm-up pass)."""
    model.logits(x)
    passes = [model.profile(x) for _ in range(runs)]
    out = []
    for i, (name, op, shape, flops, _) in enumerate(passes[0]):
        out.append(Layer(name, op, tuple(shape), flops, statistics.median(p[i][4] for p in passes)))
    return out


def table(layers: list[Layer]) -> str:
    total = sum(layer.ms for layer in layers)
    lines = ["| layer | op | output | MFLOP | ms | GFLOP/s | % of total |", "|---|---|---|---|---|---|---|"]
    for layer in layers:
        h, w, c = layer.shape
        lines.append(f"| {layer.name} | {layer.op} | {h}x{w}x{c} | {layer.flops / 1e6:.1f} | {layer.ms:.3f} | "
                     f"{layer.gflops:.1f} | {100 * layer.ms / total:.1f} |")
    flops = sum(layer.flops for layer in layers)
    lines.append(f"| **total** | | | {flops / 1e6:.0f} | {total:.2f} | {flops / (total * 1e6):.1f} | 100.0 |")
    return "\n".join(lines)


def by_op(layers: list[Layer]) -> str:
    """Time per kind of op: which kind of layer dominates."""
    groups: dict[str, list[Layer]] = {}
    for layer in layers:
        groups.setdefault(layer.op, []).append(layer)
    total = sum(layer.ms for layer in layers)
    lines = ["| op | layers | ms | GFLOP/s | % of total |", "|---|---|---|---|---|"]
    for op, ls in sorted(groups.items(), key=lambda kv: -sum(x.ms for x in kv[1])):
        ms, fl = sum(x.ms for x in ls), sum(x.flops for x in ls)
        lines.append(f"| {op} | {len(ls)} | {ms:.2f} | {fl / (ms * 1e6) if ms else 0:.1f} | {100 * ms / total:.1f} |")
    return "\n".join(lines)


def compare(a_name: str, a: list[Layer], b_name: str, b: list[Layer]) -> str:
    """Two versions side by side per layer (layers matched by name)."""
    bmap = {layer.name: layer for layer in b}
    lines = [f"| layer | op | {a_name} ms | {b_name} ms | speedup |", "|---|---|---|---|---|"]
    for la in a:
        lb = bmap.get(la.name)
        if lb is None:
            lines.append(f"| {la.name} | {la.op} | {la.ms:.3f} | - | - |")
            continue
        lines.append(f"| {la.name} | {la.op} | {la.ms:.3f} | {lb.ms:.3f} | {la.ms / lb.ms if lb.ms else 0:.2f}x |")
    for lb in b:
        if lb.name not in {x.name for x in a}:
            lines.append(f"| {lb.name} | {lb.op} | - | {lb.ms:.3f} | - |")
    ta, tb = sum(x.ms for x in a), sum(x.ms for x in b)
    lines.append(f"| **total** | | {ta:.2f} | {tb:.2f} | {ta / tb if tb else 0:.2f}x |")
    return "\n".join(lines)
