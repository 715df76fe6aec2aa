"""`pyresnet bench`: every version and the peers, checked then timed in one process, one run.

Timed region, the same for every row: one logits() call on a preprocessed 224x224 image (batch 1), after one
warm-up call. The warm-up call's output is checked against the torch oracle first (check before you time); a row
that disagrees is reported and makes the command fail. Runs: at least --min-runs and --seconds per row; versions
the registry marks slow (v1 takes tens of seconds per image) are capped at --slow-runs, and the table says so.
GFLOP/s counts 2 flops per multiply-accumulate of the layer list (pyresnet.arch), and % of peak divides by this
machine's FMA peak measured on the same thread count (pyresnet._peak).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import arch, registry
from .. import weights as wts
from ..errors import UserError
from ..machine import describe
from ..model import load
from ..progress import Progress
from ..reference import check

GFLOP = 2 * arch.total_macs() / 1e9  # per image


@dataclass
class Row:
    name: str
    kind: str  # 'version' or 'peer'
    threads: int
    samples_ms: list[float] = field(default_factory=list)
    capped: bool = False
    load_ms: float = 0.0
    check_ok: bool = True
    max_abs_diff: float = 0.0
    note: str = ""
    directory: str | None = None  # versions: csrc/<directory> at the time of the run, and its one-line summary,
    summary: str = ""  # so that a results file still says what it measured after the stages change
    isa: str = ""  # versions with several instruction sets: the one that ran

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)


def measure_peak(threads: int, seconds: float = 0.3, trials: int = 3) -> dict[str, Any]:
    """GFLOP/s of register-resident FMA loops on 1 and `threads` threads, AVX2 and (where present) AVX-512.

    The best of `trials`: anything else running on the machine can only lower the figure.
    """
    from .. import _peak

    out: dict[str, Any] = {}
    for isa, avx512 in (("avx2", False), ("avx512", True)):
        if avx512 and not _peak.has_avx512():
            continue
        probe = 2_000_000
        rate = _peak.gflops(avx512, 1, probe)  # calibrate the iteration count for ~`seconds` per measurement
        iters = max(probe, int(seconds * rate * 1e9 / (2 * (16 if avx512 else 8) * 10)))
        out[isa] = {str(n): max(_peak.gflops(avx512, n, iters) for _ in range(trials)) for n in sorted({1, threads})}
    best = "avx512" if "avx512" in out else "avx2"
    out["best_isa"] = best
    out["gflops"] = out[best][str(threads)]
    out["threads"] = threads
    return out


def time_calls(fn: Callable[[], Any], min_runs: int, seconds: float, max_runs: int,
               tick: Callable[[], None]) -> list[float]:
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        tick()
    return samples


def run(versions: Sequence[str], weights: str | None, threads: int, image: str | None = None,
        peers: bool = True, min_runs: int = 5, seconds: float = 3.0, max_runs: int = 200,
        slow_runs: int = 3) -> dict[str, Any]:
    """Check and time `versions` (and the peers); returns the JSON-ready result."""
    from ..reference.oracle import Oracle
    from ..images import preprocess

    d = wts.find(weights)
    if d is None:
        raise UserError(f"no weights found; {wts.HOW_TO_GET}")
    state, manifest = wts.check(d)
    x = preprocess(image) if image else np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
    reference = Oracle(state).logits(x)
    peak = measure_peak(threads)

    entries: list[tuple[str, str, Callable[[], Any]]] = [(v, "version", lambda v=v: load(v, d, threads)) for v in versions]
    if peers:
        from . import peers as peer_mod

        entries += [(p.name, "peer", lambda p=p: p) for p in peer_mod.available(state, threads)]
    bar = Progress(len(entries), "bench")
    rows: list[Row] = []
    for name, kind, make in entries:
        bar.label = f"bench {name:<12}"
        t0 = time.perf_counter()
        model = make()
        row = Row(name, kind, getattr(model, "threads", threads), load_ms=(time.perf_counter() - t0) * 1e3)
        if kind == "version":
            v = registry.get(name)
            row.directory, row.summary = v.directory, v.summary
            row.isa = str(getattr(getattr(model, "native", None), "isa", ""))
        agreement = check.compare(reference, model.logits(x))  # the warm-up call, checked
        row.check_ok, row.max_abs_diff = agreement.ok, agreement.max_abs_diff
        if not agreement.ok:
            row.note = agreement.report
        slow = kind == "version" and registry.get(name).slow
        row.capped = slow
        row.samples_ms = time_calls(lambda: model.logits(x), slow_runs if slow else min_runs, 0 if slow else seconds,
                                    slow_runs if slow else max_runs, lambda: bar._draw() if bar.enabled else None)
        rows.append(row)
        bar.advance()
    bar.close()
    import sys

    return {
        "command": "pyresnet " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(("pyresnet", "__main__.py"))
        else "pyresnet bench",
        "machine": describe(),
        "threads": threads,
        "gflop_per_image": GFLOP,
        "peak": peak,
        "weights": {"dir": str(d), "source": manifest.get("source")},
        "input": image or "seeded noise (numpy default_rng(0))",
        "env": {k: os.environ[k] for k in ("PYRESNET_ISA", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                if k in os.environ},
        "rows": [{**asdict(r), "median_ms": r.median_ms, "p90_ms": r.p90_ms, "min_ms": r.min_ms} for r in rows],
    }


def derived(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row: throughput, GFLOP/s, % of peak, speedup over v1 and over the previous version."""
    rows = result["rows"]
    by_name = {r["name"]: r for r in rows}
    v1 = by_name.get("v1")
    prev = None
    out = []
    for r in rows:
        med = r["median_ms"]
        d = {**r, "img_s": 1e3 / med, "gflops": result["gflop_per_image"] / (med / 1e3)}
        d["pct_peak"] = 100 * d["gflops"] / result["peak"]["gflops"]
        d["vs_v1"] = v1["median_ms"] / med if v1 else None
        d["vs_prev"] = None
        if r["kind"] == "version" and r["name"] != "py":
            d["vs_prev"] = prev["median_ms"] / med if prev else None
            prev = r
        out.append(d)
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"{m['cpu']}, {m['cpus_allowed']} CPUs allowed, {result['threads']} thread(s); "
        f"fp32 FMA peak {result['peak']['gflops']:.0f} GFLOP/s ({result['peak']['best_isa']}, measured); "
        f"{result['gflop_per_image']:.2f} GFLOP per image",
        "",
        "| version | threads | median ms | p90 ms | min ms | img/s | GFLOP/s | % peak | vs v1 | vs prev | runs | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in derived(result):
        fmt = lambda v, f="{:.1f}x": "-" if v is None else f.format(v)  # noqa: E731
        runs = f"{len(d['samples_ms'])}" + (" (capped)" if d["capped"] else "")
        ok = "ok" if d["check_ok"] else "**FAIL**"
        name = d["name"] if d["kind"] == "version" else f"*{d['name']}*"
        lines.append(f"| {name} | {d['threads']} | {d['median_ms']:.1f} | {d['p90_ms']:.1f} | {d['min_ms']:.1f} | "
                     f"{d['img_s']:.2f} | {d['gflops']:.1f} | {d['pct_peak']:.1f} | {fmt(d['vs_v1'])} | "
                     f"{fmt(d['vs_prev'])} | {runs} | {ok} |")
    if any(d["capped"] for d in derived(result)):
        lines += ["", "capped: versions marked slow run a fixed few times instead of the time budget."]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Latency per version on a log scale, peers as horizontal reference lines, titled with the machine."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from None
    rows = derived(result)
    versions = [r for r in rows if r["kind"] == "version"]
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.bar([r["name"] for r in versions], [r["median_ms"] for r in versions], color="#4a7ab5")
    for r in versions:
        ax.annotate(f"{r['median_ms']:.0f} ms", (r["name"], r["median_ms"]), ha="center", va="bottom", fontsize=8)
    for r, color in zip([r for r in rows if r["kind"] == "peer"], ("#d62728", "#2ca02c", "#9467bd")):
        ax.axhline(r["median_ms"], color=color, linestyle="--", label=f"{r['name']} {r['median_ms']:.1f} ms")
    ax.set_yscale("log")
    ax.set_ylabel("latency per image, ms (log scale)")
    m = result["machine"]
    ax.set_title(f"ResNet-50 batch 1, {result['threads']} thread(s): {m['cpu']} ({m['cpus_allowed']} CPUs)")
    if any(r["kind"] == "peer" for r in rows):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=1) + "\n")
