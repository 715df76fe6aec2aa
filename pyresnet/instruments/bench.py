"""`pyresnet bench`: every version and the peers, checked, then timed for latency and for throughput, in one process.

It measures; report.py renders what it measured (the console table, the plot, the README's tables).

1. make: each row (a version, or a peer at its fastest) is made in turn, and its first call, the warm-up, is checked
   against the torch oracle (check before you time); a row that disagrees is reported and makes the command fail.
   The reduced-precision rows are not held to fp32's tolerance: their agreement with the fp32 network (top-1, top-5
   overlap, max |logit difference| relative) is measured on evaluation inputs kept apart from their calibration
   inputs, and reported. Every row is then kept alive until the throughput settings are measured.
2. latency: one logits() call on one image (batch 1). The rows are measured interleaved, in rounds: in each round
   every row makes a short run of calls, one row after another, in an order shuffled afresh each round. This
   machine's speed shifts in steps that last dozens of calls; measured one row after another, a slow stretch lands
   on single rows and the ratios between rows lie, while interleaved it is spread over every row. Each row's budget
   (at least --min-runs calls and --seconds seconds, at most --max-runs) is split evenly over the rounds, and each
   run opens with one untimed call (the row's weights are out of the caches and its workers asleep after the other
   rows ran). Between two runs we pause PAUSE_S: ONNX Runtime's and torch's workers spin for a while after a run and
   would slow the next row. Versions the registry marks slow (v1) make one call a round until they have
   --slow-runs, and say so. The JSON keeps every sample with the round it was taken in; report.py gives each row's
   median a 95% interval, and each ratio between rows one, by bootstrap over the rounds (stats.py).
3. throughput, sustained images per second, interleaved the same way, each setting in THROUGHPUT_ROUNDS rounds: at
   each --batch size above 1 (one call on N images, repeated; rows that cannot take a batch natively are not
   repeated: their batch is their images one by one), and with --streams S: S independent instances on threads / S
   threads each, each fed by its own Python thread (made for this setting only, freed after it); and, for a peer
   with a throughput mode of its own (OpenVINO's THROUGHPUT hint with asynchronous infer requests), that mode as
   the setting 'async'.
After the rows, freed, the end-to-end rows (end_to_end_run), each in a block of its own: `run`'s pipeline with its
defaults (decode, preprocess, inference) over the --images folder, alternated with the same model's inference
alone on the same batch, for the newest fp32 stage and the newest int8 one.
GFLOP/s counts 2 operations per multiply-accumulate of the layer list (pyresnet.arch); report.py divides a row's by
the peak of the instruction its own precision and path multiply with (measure_peak, pyresnet._peak), on its thread
count.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import statistics
import sys
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from .. import arch, registry
from .. import weights as wts
from ..accuracy.agree import LazyInputs, calibration_inputs
from ..accuracy.agree import statistics as agreement_statistics
from ..errors import UserError
from ..images import preprocess
from ..machine import describe
from ..model import load
from ..pipeline import classify, default_batch, default_readers
from ..progress import Progress
from ..reference import check
from ..reference.oracle import Oracle
from ..safeio import check_writable, write_file
from . import peers as peer_specs
from .report import P99_SAMPLES, plot_format, pyplot

GFLOP = 2 * arch.total_macs() / 1e9  # per image
ROUNDS = 10  # the latency measurement's rounds, by default (--rounds)
THROUGHPUT_ROUNDS = 3  # rounds of each throughput setting
PAUSE_S = 0.2  # between two rows' runs: long enough for another runtime's spinning workers to go quiet

T = TypeVar("T")


@dataclass
class Row:
    name: str
    kind: str  # 'version' or 'peer'
    threads: int
    samples_ms: list[float] = field(default_factory=list)  # batch 1 latency, in the order taken
    sample_rounds: list[int] = field(default_factory=list)  # the round each sample was taken in
    capped: bool = False
    load_ms: float = 0.0
    check_ok: bool = True
    max_abs_diff: float = 0.0
    note: str = ""
    directory: str | None = None  # versions: csrc/<directory> at the time of the run, and its one-line summary,
    summary: str = ""  # so that a results file still says what it measured after the stages change
    isa: str = ""  # versions with several instruction sets: the one that ran
    throughput: dict[str, float] = field(default_factory=dict)  # "batch 8" / "streams 2" -> img/s
    throughput_runs: dict[str, list[float]] = field(default_factory=dict)  # batch: seconds per call; streams: calls
    throughput_rounds: dict[str, list[float]] = field(default_factory=dict)  # per setting: img/s in each round
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


@dataclass(eq=False)  # compared and hashed by identity
class Live:
    """A row under measurement: its Row, the object it calls, whether the registry marks it slow, and whether it
    takes a batch in one native call."""

    row: Row
    model: Any
    slow: bool
    native_batch: bool


def measure_peak(threads: int, seconds: float = 0.3, trials: int = 3) -> dict[str, Any]:
    """The peak of each dot-product instruction the stages use (pyresnet._peak: fp32 FMA on ymm and zmm,
    vdpbf16ps, vpdpbusd, the exact int8 path's vpmaddwd + vpaddd and the 7-bit path's vpmaddubsw + vpmaddwd + vpaddd
    on ymm and zmm; those this CPU has), in GOP/s
    (2 per multiply-accumulate) on 1 and `threads` threads. The best of `trials`: anything else running on the
    machine can only lower the figure. 'gflops' and 'best_isa' keep the fp32 FMA peak on `threads` threads."""
    from .. import _peak  # the compiled peak benchmark (csrc/peak), built with the stages

    kernels: dict[str, Any] = {}
    for name, what in _peak.kernels():
        probe = 1_000_000
        t0 = time.perf_counter()
        _peak.gops(name, 1, probe)  # sizes the loop to about `seconds` a measurement
        iters = max(probe, int(probe * seconds / max(time.perf_counter() - t0, 1e-6)))
        kernels[name] = {"what": what, **{str(n): max(_peak.gops(name, n, iters) for _ in range(trials))
                                          for n in sorted({1, threads})}}
    best = "avx512" if "fma_avx512" in kernels else "avx2"
    return {"threads": threads, "kernels": kernels, "best_isa": best,
            "gflops": kernels[f"fma_{best}"][str(threads)]}


def time_calls(fn: Callable[[], Any], min_runs: int, seconds: float, max_runs: int) -> list[float]:
    """ms per call of fn, called at least min_runs times and for at least `seconds`, at most max_runs times."""
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def throughput_run(fn: Callable[[], Any], seconds: float, min_calls: int = 1) -> tuple[float, list[float]]:
    """(elapsed seconds, seconds per call) of calling fn for at least `seconds` and min_calls."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return time.perf_counter() - start, times


def streams_run(instances: Sequence[Any], x: np.ndarray, seconds: float) -> tuple[float, list[float]]:
    """(elapsed seconds, calls per instance) of len(instances) independent instances, each called on one image by
    its own thread for `seconds`. Each thread makes one untimed call before the clock starts."""
    counts = [0] * len(instances)
    ready, go = threading.Barrier(len(instances) + 1), threading.Barrier(len(instances) + 1)
    deadline = [0.0]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            instances[i].logits(x)  # warm, on this thread
        except BaseException as e:  # noqa: BLE001 - reported on the calling thread
            errors.append(e)
        ready.wait()
        go.wait()
        try:
            while not errors and (counts[i] == 0 or time.perf_counter() < deadline[0]):  # one call each, at least
                instances[i].logits(x)
                counts[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported on the calling thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(instances))]
    for t in threads:
        t.start()
    ready.wait()  # every instance warm
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    go.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed, [float(c) for c in counts]


def agreement(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> dict[str, Any]:
    """How closely a reduced-precision row follows the fp32 network over a set of inputs (accuracy.agree's
    statistics, so `bench` and `pyresnet agree` measure it the same way)."""
    return {"inputs": len(reference), **agreement_statistics(reference, got)}


def natural_noise(seed: int) -> np.ndarray:
    """A seeded image-like input (1/f spectrum, unit variance per channel), HWC float32."""
    return wts.natural_noise(np.random.default_rng(seed))


def shuffled(items: Sequence[T], r: int) -> list[T]:
    """items in the order of round r: shuffled, seeded by r (the same run orders its rounds the same way every
    time), so that no row keeps a place in the round or a neighbour."""
    return random.Random(r).sample(list(items), len(items))


def latency_rounds(rounds: int, min_runs: int, seconds: float, max_runs: int, slow_runs: int, any_slow: bool) -> int:
    """How many rounds the latency measurement takes: `rounds`, but no more than a row may make calls (max_runs,
    and min_runs when there is no time budget: every round gives every row at least one call), and at least
    slow_runs when a slow row is measured (it makes one call a round)."""
    r = max(1, min(rounds, max_runs, min_runs if seconds <= 0 else max_runs))
    return max(r, slow_runs) if any_slow else r


def measure_latency(live: Sequence[Live], x: np.ndarray, rounds: int, min_runs: int, seconds: float,
                    max_runs: int, slow_runs: int, bar: Progress) -> dict[str, Any]:
    """Batch-1 latency of every row, interleaved (see the module's docstring): each row's samples land in
    row.samples_ms, the round of each in row.sample_rounds. Returns how it was measured, for the JSON."""
    calls = math.ceil(min_runs / rounds)  # per round, at least: rounds x calls >= min_runs
    cap = math.ceil(max_runs / rounds)  # per round, at most: the samples spread over every round
    order: list[list[str]] = []
    for r in range(rounds):
        bar.relabel(f"bench latency, round {r + 1}/{rounds}")
        todo = [lv for lv in live if len(lv.row.samples_ms) < (slow_runs if lv.slow else max_runs)]
        if not todo:
            break
        order.append([lv.row.name for lv in shuffled(todo, r)])
        for i, lv in enumerate(shuffled(todo, r)):
            if i:
                time.sleep(PAUSE_S)
            fn = lambda lv=lv: lv.model.logits(x)  # noqa: E731
            if lv.slow:
                got = time_calls(fn, 1, 0, 1)
            else:
                left = max_runs - len(lv.row.samples_ms)
                fn()  # untimed: the first call after another row's run
                got = time_calls(fn, min(calls, left), seconds / rounds, min(cap, left))
            lv.row.samples_ms += got
            lv.row.sample_rounds += [r] * len(got)
        time.sleep(PAUSE_S)
        bar.advance()
    for lv in live:
        lv.row.capped = lv.slow
    return {"rounds": rounds, "calls_per_round": calls, "max_calls_per_round": cap,
            "seconds_per_round": seconds / rounds, "pause_s": PAUSE_S, "throughput_rounds": THROUGHPUT_ROUNDS,
            "order": order}


# A throughput block: (the row, what to time for `seconds`: (images done, elapsed seconds, runs)).
Block = tuple[Live, Callable[[float], tuple[int, float, list[float]]]]


def measure_throughput(key: str, blocks: Sequence[Block], seconds: float, bar: Progress,
                       merge: Callable[[list[float], list[float]], list[float]]) -> None:
    """One throughput setting over its rows, interleaved in THROUGHPUT_ROUNDS rounds of seconds / rounds each;
    row.throughput[key] is the images of every round over their time. merge(runs so far, a round's runs) keeps
    throughput_runs: the seconds per call of every round, or the calls per stream summed over the rounds."""
    done: dict[Live, tuple[int, float]] = {}
    for r in range(THROUGHPUT_ROUNDS):
        bar.relabel(f"bench {key}, round {r + 1}/{THROUGHPUT_ROUNDS}")
        for i, (lv, block) in enumerate(shuffled(blocks, r)):
            if i:
                time.sleep(PAUSE_S)
            images, elapsed, runs = block(seconds / THROUGHPUT_ROUNDS)
            row = lv.row
            row.throughput_rounds.setdefault(key, []).append(images / elapsed)
            row.throughput_runs[key] = merge(row.throughput_runs.get(key, []), runs)
            n, t = done.get(lv, (0, 0.0))
            done[lv] = n + images, t + elapsed
            row.throughput[key] = done[lv][0] / done[lv][1]
        time.sleep(PAUSE_S)
        bar.advance()


def batch_block(lv: Live, xb: np.ndarray) -> Block:
    """A throughput block of one call on the batch xb, repeated (after one untimed call)."""
    def block(seconds: float) -> tuple[int, float, list[float]]:
        lv.model.logits(xb)
        elapsed, times = throughput_run(lambda: lv.model.logits(xb), seconds)
        return len(xb) * len(times), elapsed, times

    return lv, block


def streams_block(lv: Live, instances: Sequence[Any], x: np.ndarray) -> Block:
    """A throughput block of len(instances) streams, each on one image."""
    def block(seconds: float) -> tuple[int, float, list[float]]:
        elapsed, counts = streams_run(instances, x, seconds)
        return int(sum(counts)), elapsed, counts

    return lv, block


def async_block(lv: Live, x: np.ndarray) -> Block:
    """A throughput block of a peer's own throughput mode (async_throughput: images done, elapsed seconds)."""
    def block(seconds: float) -> tuple[int, float, list[float]]:
        images, elapsed = lv.model.async_throughput(x, seconds)
        return images, elapsed, [elapsed]

    return lv, block


def make_row(name: str, kind: str, make: Callable[[], Any], threads: int, x: np.ndarray, reference: np.ndarray,
             reference_logits: Callable[[], list[np.ndarray]], evaluation: Sequence[np.ndarray]) -> Live:
    """Make a row (a version or a peer: kind), warm it up on x and check that call against the oracle's `reference`;
    a reduced-precision row has its agreement measured instead, on x and the evaluation inputs (reference_logits():
    the oracle's logits on them)."""
    t0 = time.perf_counter()
    model = make()
    row = Row(name, kind, getattr(model, "threads", threads), load_ms=(time.perf_counter() - t0) * 1e3)
    if kind == "version":
        v = registry.get(name)
        row.directory, row.summary = v.directory, v.summary
        row.isa = str(getattr(getattr(model, "native", None), "isa", ""))
        reduced_row, slow, native_batch = v.has("int8") or v.has("bf16"), v.slow, v.has("batch")
    else:
        row.peer = model.describe()
        reduced_row, slow, native_batch = peer_specs.get(name).precision != "fp32", False, True
    got = model.logits(x)  # the warm-up call, checked
    if reduced_row:
        row.agreement = agreement(reference_logits(), [got] + [model.logits(e) for e in evaluation])
        row.note = "reduced precision: agreement with fp32 reported, not checked"
    else:
        verdict = check.compare(reference, got)
        row.check_ok, row.max_abs_diff = verdict.ok, verdict.max_abs_diff
        if not verdict.ok:
            row.note = verdict.report
    return Live(row, model, slow, native_batch)


def run(versions: Sequence[str], weights: str | None, threads: int, image: str | None = None,
        peers: bool = True, min_runs: int = 5, seconds: float = 3.0, max_runs: int = 200,
        slow_runs: int = 3, batches: Sequence[int] = (1,), streams: int = 1,
        torch_modes: Sequence[str] | None = None, images: Sequence[Path] = (), reduced: bool = True,
        end_to_end: bool = True, rounds: int = ROUNDS) -> dict[str, Any]:
    """Check and time `versions` (and the peers); returns the JSON-ready result (every sample kept)."""
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
        inputs = peer_specs.PeerInputs(state, threads, torch_modes or peer_specs.TORCH_MODES, lambda: calibration)
        entries += [(s.name, "peer", lambda s=s: peer_specs.make(s, inputs)) for s in peer_specs.installed()
                    if reduced or s.precision == "fp32"]
    settings = [b for b in batches if b > 1] + ([streams] if streams > 1 else []) + ["async"]
    r_latency = latency_rounds(rounds, min_runs, seconds, max_runs, slow_runs,
                               any(registry.get(v).slow for v in versions))
    bar = Progress(len(entries) + r_latency + THROUGHPUT_ROUNDS * len(settings), "bench")
    ref_eval: list[np.ndarray] = []  # the oracle's logits on x and the evaluation inputs, once, when a row needs them

    def reference_logits() -> list[np.ndarray]:
        if not ref_eval:
            ref_eval.extend([reference] + [oracle.logits(e) for e in evaluation])
        return ref_eval

    live = []
    for name, kind, make in entries:
        bar.relabel(f"bench {name:<24}")
        live.append(make_row(name, kind, make, threads, x, reference, reference_logits, evaluation))
        gc.collect()
        time.sleep(PAUSE_S)  # a peer's spinning workers quiet before the next row's trials
        bar.advance()

    interleaved = measure_latency(live, x, r_latency, min_runs, seconds, max_runs, slow_runs, bar)
    fast = [lv for lv in live if not lv.slow]
    for b in batches:
        if b > 1:
            xb = np.ascontiguousarray(np.broadcast_to(x, (b, *x.shape)))
            measure_throughput(f"batch {b}", [batch_block(lv, xb) for lv in fast if lv.native_batch], seconds, bar,
                               lambda runs, more: runs + more)
    asynchronous = [lv for lv in fast if hasattr(lv.model, "async_throughput")]
    if asynchronous:
        measure_throughput("async", [async_block(lv, x) for lv in asynchronous], seconds, bar,
                           lambda runs, more: runs + more)
    if streams > 1:  # S more instances of every row, for this setting only
        per = max(1, threads // streams)
        copies = {lv: ([load(lv.row.name, d, per) for _ in range(streams)] if lv.row.kind == "version"
                           else [lv.model.spawn(per) for _ in range(streams)]) for lv in fast}
        measure_throughput(f"streams {streams}", [streams_block(lv, copies[lv], x) for lv in fast], seconds,
                           bar, lambda runs, more: [i + j for i, j in zip(runs, more)] if runs else more)
        del copies
    rows = [lv.row for lv in live]
    del live, fast  # every row's objects, before the end-to-end row
    gc.collect()
    bar.close()
    e2e = []
    if end_to_end and images:
        for v in end_to_end_versions(versions):
            time.sleep(PAUSE_S)
            e2e.append(end_to_end_run(v, d, list(images), seconds))
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
        "interleaved": interleaved,
        "env": {k: os.environ[k] for k in ("PYRESNET_ISA", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                if k in os.environ},
        "rows": [{**asdict(r), "median_ms": r.median_ms, "p90_ms": r.p90_ms, "p99_ms": r.p99_ms,
                  "min_ms": r.min_ms} for r in rows],
        "end_to_end": e2e,
    }


E2E_ROUNDS = 8  # the end-to-end rows' rounds: a pass of the pipeline and a run of inference alone in each


def end_to_end_run(version: str, d: Path, images: list[Path], seconds: float,
                   rounds: int = E2E_ROUNDS) -> dict[str, Any]:
    """`run` with its defaults (default_batch(), all the CPUs for inference, default_readers() reader threads: what
    a user who tunes nothing gets) over the images, against the same model's inference alone on the same batch of
    one preprocessed image repeated (no readers running), the two alternated in `rounds` rounds of about `seconds`
    each (at least one pass over the images), so that a stretch of the host's speed lands on both. Returns img/s of each and their
    ratio; and the CPU time one image's decoding and preprocessing takes (decode_cpu_ms: process time of a pass over
    the images, the model idle, median over the rounds), from which report.py says what a perfect overlap allows."""
    model = load(version, d)
    readers, batch = default_readers(), default_batch(model)
    x = model.preprocess(images[0])
    xb = np.ascontiguousarray(np.broadcast_to(x, (batch, *x.shape))) if batch > 1 else x
    model.logits(xb)  # warm
    done, wall, alone_n, alone_s = 0, 0.0, 0, 0.0
    per_round: list[tuple[float, float]] = []
    decode_ms: list[float] = []
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - start < seconds:
            with closing(classify(model, images, batch, readers)) as stream:
                for b in stream:  # a photo that became unreadable since bench.run read it: not counted
                    n += len(b.good)
        e2e_s = time.perf_counter() - start
        time.sleep(PAUSE_S)
        elapsed, calls = throughput_run(lambda: model.logits(xb), seconds)
        per_round.append((n / e2e_s, batch * len(calls) / elapsed))
        cpu = time.process_time()
        for p in images:  # what one image's decoding and preprocessing cost, the model idle
            try:
                model.preprocess(p)
            except UserError:  # unreadable since bench.run read it: the pipeline skipped it too
                pass
        decode_ms.append((time.process_time() - cpu) * 1e3 / len(images))
        done, wall = done + n, wall + e2e_s
        alone_n, alone_s = alone_n + batch * len(calls), alone_s + elapsed
        time.sleep(PAUSE_S)
    return {"version": version, "images": len(images), "rounds": rounds, "batch": batch, "readers": readers,
            "threads": model.threads, "img_s": done / wall, "inference_img_s": alone_n / alone_s,
            "ratio": (done / wall) / (alone_n / alone_s), "rounds_img_s": per_round,
            "decode_cpu_ms": statistics.median(decode_ms)}


def end_to_end_versions(versions: Sequence[str]) -> list[str]:
    """The stages the end-to-end rows run, among those measured: the newest fp32 stage `run` defaults to and the
    newest int8 one (the fastest of each precision)."""
    fp32 = [v for v in versions if registry.get(v).precision == "fp32" and not registry.get(v).stepping_stone
            and v != "py" and not registry.get(v).slow]
    int8 = [v for v in versions if registry.get(v).has("int8")]
    return fp32[-1:] + int8[-1:]


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
