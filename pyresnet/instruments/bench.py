"""`pyresnet bench`: every version and the peers, checked, then timed for latency and for throughput, in one process.

It measures; report.py renders what it measured (the console table, the plot, the README's tables).

Per row (a version, or a peer at its fastest):
1. check: the first call's output against the torch oracle (check before you time); a row that disagrees is
   reported and makes the command fail. The int8 peer is not held to fp32's tolerance: its agreement with the fp32
   network (top-1, top-5 overlap, max |logit difference| relative) is measured on evaluation inputs kept apart from
   its calibration inputs, and reported.
2. latency: one logits() call on one image (batch 1), after the warm-up; at least --min-runs runs and --seconds
   seconds, at most --max-runs; p50, p90, p99 (p99 only from 100 samples up) and min. Versions the registry marks
   slow (v1) are capped at --slow-runs and say so.
3. throughput, sustained images per second: at each --batch size above 1 (one call on N images, repeated for
   --seconds; rows that cannot take a batch natively are not repeated: their batch is their images one by one),
   and with --streams S: S independent instances on threads / S threads each, each fed by its own Python thread.
Each row is timed in a block of its own, its objects freed before the next (ORT's workers spin after a run).
After the rows, an end-to-end row: `run`'s pipeline (decode, preprocess, inference) over the --images folder.
GFLOP/s counts 2 flops per multiply-accumulate of the layer list (pyresnet.arch), and % of peak divides by this
machine's FMA peak measured on the same thread count (pyresnet._peak).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import threading
import time
from contextlib import closing
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
from ..safeio import check_writable, write_file
from .report import P99_SAMPLES, plot_format, pyplot

GFLOP = 2 * arch.total_macs() / 1e9  # per image


@dataclass
class Row:
    name: str
    kind: str  # 'version' or 'peer'
    threads: int
    samples_ms: list[float] = field(default_factory=list)  # batch 1 latency
    capped: bool = False
    load_ms: float = 0.0
    check_ok: bool = True
    max_abs_diff: float = 0.0
    note: str = ""
    directory: str | None = None  # versions: csrc/<directory> at the time of the run, and its one-line summary,
    summary: str = ""  # so that a results file still says what it measured after the stages change
    isa: str = ""  # versions with several instruction sets: the one that ran
    throughput: dict[str, float] = field(default_factory=dict)  # "batch 8" / "streams 2" -> img/s
    throughput_runs: dict[str, list[float]] = field(default_factory=dict)  # per setting: seconds per call
    peer: dict[str, Any] = field(default_factory=dict)  # a peer's own description (mode, NCHWc nodes, ...)
    agreement: dict[str, Any] = field(default_factory=dict)  # reduced-precision rows: agreement with fp32

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    def percentile_ms(self, q: float) -> float:
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]

    @property
    def p90_ms(self) -> float:
        return self.percentile_ms(0.9)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile_ms(0.99) if len(self.samples_ms) >= P99_SAMPLES else None

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


def throughput_run(fn: Callable[[], Any], images: int, seconds: float, min_calls: int = 3) -> tuple[float, list[float]]:
    """Sustained img/s of calling fn (which computes `images` images) for at least `seconds` and min_calls."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return images * len(times) / (time.perf_counter() - start), times


def streams_run(instances: Sequence[Any], x: np.ndarray, seconds: float) -> tuple[float, list[float]]:
    """Sustained img/s of len(instances) independent instances, each called on one image by its own thread."""
    counts = [0] * len(instances)
    start_line = threading.Barrier(len(instances) + 1)
    deadline = [0.0]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start_line.wait()
            while counts[i] == 0 or time.perf_counter() < deadline[0]:  # one call each, at least
                instances[i].logits(x)
                counts[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported on the calling thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(instances))]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    start_line.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / elapsed, [float(c) for c in counts]


def agreement(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> dict[str, Any]:
    """How closely a reduced-precision row follows the fp32 network over a set of inputs (accuracy.agree's
    statistics, so `bench` and `pyresnet agree` measure it the same way)."""
    from ..accuracy.agree import statistics

    return {"inputs": len(reference), **statistics(reference, got)}


def natural_noise(seed: int) -> np.ndarray:
    """A seeded image-like input (1/f spectrum, unit variance per channel), HWC float32."""
    return wts.natural_noise(np.random.default_rng(seed))


def _free() -> None:
    gc.collect()
    time.sleep(0.3)  # let another runtime's spinning workers go quiet before the next block


def run(versions: Sequence[str], weights: str | None, threads: int, image: str | None = None,
        peers: bool = True, min_runs: int = 5, seconds: float = 3.0, max_runs: int = 200,
        slow_runs: int = 3, batches: Sequence[int] = (1,), streams: int = 1,
        torch_modes: Sequence[str] | None = None, images: Sequence[Path] = (), reduced: bool = True,
        end_to_end: bool = True) -> dict[str, Any]:
    """Check and time `versions` (and the peers); returns the JSON-ready result (every sample kept)."""
    from ..images import preprocess
    from ..reference.oracle import Oracle

    from ..accuracy.agree import LazyInputs, calibration_inputs

    d = wts.find(weights)
    if d is None:
        raise UserError(f"no weights found; {wts.HOW_TO_GET}")
    state, manifest = wts.check(d)
    x = preprocess(image) if image else np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
    # The reduced-precision rows' inputs, calibration and evaluation kept apart. With a calibration in the weights
    # directory (`pyresnet calibrate`), the int8 peer is quantized from the same images as our int8 stage and the
    # evaluation takes the --images photos that were not among them; without one, seeded image-like noise and every
    # other photo calibrate, and the other photos evaluate. The inputs are made one at a time when a row needs them
    # (memory does not grow with the number of photos), and every photo is read once here, before the first
    # measurement, so that an unreadable one is said at once instead of after a long run.
    calibrated = {s["sha256"] for s in wts.calibration_sources(d, manifest)}
    if calibrated:
        held_out = [p for p in images if wts.sha256_file(Path(p)) not in calibrated]  # hashed in chunks
    for p in images:
        preprocess(p)
    noise = lambda seeds: LazyInputs([lambda i=i: natural_noise(i) for i in seeds])  # noqa: E731
    photos = lambda paths: LazyInputs([lambda p=p: preprocess(p) for p in paths])  # noqa: E731
    if calibrated:
        calibration = calibration_inputs(d, manifest)
    else:
        calibration = noise(range(100, 108)) + photos(images[0::2])
        held_out = list(images[1::2])
    evaluation = noise(range(200, 204)) + photos(held_out)  # after x, the benchmark's own input
    oracle = Oracle(state)
    reference = oracle.logits(x)
    peak = measure_peak(threads)

    entries: list[tuple[str, str, Callable[[], Any]]] = [
        (v, "version", lambda v=v: load(v, d, threads)) for v in versions]
    if peers:
        from . import peers as peer_mod

        inputs = peer_mod.PeerInputs(state, threads, torch_modes or peer_mod.TORCH_MODES, lambda: calibration)
        entries += [(s.name, "peer", lambda s=s: peer_mod.make(s, inputs)) for s in peer_mod.installed()
                    if reduced or s.precision == "fp32"]
    ref_eval: list[np.ndarray] = []  # the oracle's logits on x and the evaluation inputs, once, when a row needs them
    bar = Progress(len(entries), "bench")
    rows: list[Row] = []
    for name, kind, make in entries:
        bar.label = f"bench {name:<16}"
        bar._draw() if bar.enabled else None
        t0 = time.perf_counter()
        model = make()
        row = Row(name, kind, getattr(model, "threads", threads), load_ms=(time.perf_counter() - t0) * 1e3)
        if kind == "version":
            v = registry.get(name)
            row.directory, row.summary = v.directory, v.summary
            row.isa = str(getattr(getattr(model, "native", None), "isa", ""))
        else:
            row.peer = model.describe()
        reduced_row = (peer_mod.get(name).precision != "fp32" if kind == "peer"
                       else registry.get(name).has("int8") or registry.get(name).has("bf16"))
        got = model.logits(x)  # the warm-up call, checked
        if reduced_row:
            ref_eval = ref_eval or [reference] + [oracle.logits(e) for e in evaluation]
            row.agreement = agreement(ref_eval, [got] + [model.logits(e) for e in evaluation])
            row.note = "reduced precision: agreement with fp32 reported, not checked"
        else:
            verdict = check.compare(reference, got)
            row.check_ok, row.max_abs_diff = verdict.ok, verdict.max_abs_diff
            if not verdict.ok:
                row.note = verdict.report
        slow = kind == "version" and registry.get(name).slow
        row.capped = slow
        row.samples_ms = time_calls(lambda: model.logits(x), slow_runs if slow else min_runs, 0 if slow else seconds,
                                    slow_runs if slow else max_runs, lambda: bar._draw() if bar.enabled else None)
        native_batch = kind == "peer" or registry.get(name).has("batch")
        for b in batches:
            if b == 1 or slow or not native_batch:
                continue
            xb = np.ascontiguousarray(np.broadcast_to(x, (b, *x.shape)))
            rate, calls = throughput_run(lambda: model.logits(xb), b, seconds)
            row.throughput[f"batch {b}"], row.throughput_runs[f"batch {b}"] = rate, calls
        if streams > 1 and not slow:
            per = max(1, threads // streams)
            instances = ([load(name, d, per) for _ in range(streams)] if kind == "version"
                         else [model.spawn(per) for _ in range(streams)])
            for inst in instances:
                inst.logits(x)  # warm
            rate, counts = streams_run(instances, x, seconds)
            row.throughput[f"streams {streams}"], row.throughput_runs[f"streams {streams}"] = rate, counts
            if kind == "peer":
                model.spawn(threads)  # back to the full thread count (torch's setting is per process)
            del instances
        rows.append(row)
        del model
        _free()
        bar.advance()
    bar.close()
    e2e = None
    if end_to_end and images and versions:
        bar.label = "bench end to end"
        e2e = end_to_end_run(versions[-1], d, threads, list(images), max(batches), seconds)
    return {
        "command": "pyresnet " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(("pyresnet", "__main__.py"))
        else "pyresnet bench",
        "machine": describe(),
        "threads": threads,
        "gflop_per_image": GFLOP,
        "peak": peak,
        "weights": {"dir": str(d), "source": manifest.get("source")},
        "input": image or "seeded noise (numpy default_rng(0))",
        "images": [str(p) for p in images],
        "batches": list(batches),
        "streams": streams,
        "env": {k: os.environ[k] for k in ("PYRESNET_ISA", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                if k in os.environ},
        "rows": [{**asdict(r), "median_ms": r.median_ms, "p90_ms": r.p90_ms, "p99_ms": r.p99_ms,
                  "min_ms": r.min_ms} for r in rows],
        "end_to_end": e2e,
    }


def end_to_end_run(version: str, d: Path, threads: int, images: list[Path], batch: int,
                   seconds: float) -> dict[str, Any]:
    """`run`'s pipeline (reader thread, decode, preprocess, batches, inference) over the images, repeated for at
    least `seconds`; img/s end to end next to the same model's inference alone on the same batches."""
    from ..machine import cpus_allowed
    from ..pipeline import classify

    model = load(version, d, threads)
    batch = batch if model.version.has("batch") else 1
    readers = max(1, cpus_allowed() // 2)
    model.logits(model.preprocess(images[0]))  # warm
    done, infer, rounds = 0, 0.0, 0
    start = time.perf_counter()
    while rounds == 0 or time.perf_counter() - start < seconds:
        with closing(classify(model, images, batch, readers)) as stream:
            for b in stream:  # a photo that became unreadable since bench.run read it: not timed
                infer += b.seconds
                done += len(b.good)
        rounds += 1
    wall = time.perf_counter() - start
    return {"version": version, "images": len(images), "rounds": rounds, "batch": batch, "readers": readers,
            "threads": model.threads, "img_s": done / wall, "inference_img_s": done / infer,
            "ratio": (done / wall) / (done / infer)}


def check_outputs(json_out: str | None, plot_out: str | None) -> tuple[Path | None, Path | None]:
    """The --json and --plot targets checked before anything is measured (safeio.check_writable: a file, absent or
    regular, in a writable directory; for the plot also matplotlib and an image format it writes), so a long run
    is not lost at its last step. Returns them as Paths (None where not asked)."""
    j = check_writable(json_out, UserError, "--json") if json_out else None
    p = check_writable(plot_out, UserError, "--plot") if plot_out else None
    if p is not None:
        plt = pyplot()
        formats = plt.figure().canvas.get_supported_filetypes()
        plt.close("all")
        if plot_format(p) not in formats:
            raise UserError(f"--plot {p}: matplotlib cannot write '.{plot_format(p)}' files; use one of "
                            f"{', '.join('.' + f for f in sorted(formats))}")
    if j is not None and p is not None and j.resolve() == p.resolve():
        raise UserError(f"--json and --plot name the same file, {j}")
    return j, p


def save_json(result: dict[str, Any], path: Path) -> None:
    """The result as indented JSON, written through safeio.write_file (an earlier file survives a failure)."""
    write_file(path, (json.dumps(result, indent=1) + "\n").encode(), UserError, "--json")
