"""The lab's instruments: bench (table, JSON, plot, peak), diff (unified, stat, chain, html), info.

Tiny run counts keep these fast; no timing is asserted, only that the instruments measure and report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pyresnet
from pyresnet import registry
from pyresnet.instruments import report

from conftest import assert_one_line_error, run_cli

FAST = [v for v in pyresnet.versions() if not registry.get(v).slow]
COMPILED = [v.key for v in registry.REGISTRY if v.directory]


def test_bench_table_json_and_plot(calibrated_dir: Path, tmp_path: Path) -> None:
    """Latency, throughput at a batch size and in streams, the peers (PyTorch's fastest mode, ONNX Runtime fp32 with
    its NCHWc count, int8 with its agreement), the end-to-end row, the JSON and the plot: all produced."""
    import cv2
    import numpy as np

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"{i}.png"), np.full((120, 160, 3), 60 * i, np.uint8))
    from pyresnet.instruments.bench import end_to_end_versions

    # the newest stage with an end-to-end row (fp32 or int8; the bf16 stage has none)
    versions = ["py"] + [v for v in FAST if v != "py" and end_to_end_versions([v])][-1:]
    r = run_cli("bench", "--version", *versions, "--weights", str(calibrated_dir), "--threads", "2",
                "--min-runs", "2", "--seconds", "0", "--batch", "1", "2", "--streams", "2", "--images", str(photos),
                "--torch-modes", "eager", "jit", "--json", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png"))
    assert r.returncode == 0, r.stderr
    assert "| version | threads | p50 ms [95% CI] | p90 ms | p99 ms |" in r.stdout and "img/s streams 2" in r.stdout
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["threads"] == 2 and result["gflop_per_image"] == pytest.approx(8.18, abs=0.01)
    m = result["machine"]
    assert {"cpu", "cpus_allowed", "simd", "versions", "cpu_ident"} <= set(m) and "avx2" in m["simd"]
    assert all(m["versions"][v]["flags"] for v in versions)
    assert result["peak"]["gflops"] > 0 and {"fma_avx2", "maddwd_avx2"} <= set(result["peak"]["kernels"])
    rows = {row["name"]: row for row in result["rows"]}
    assert list(rows)[: len(versions)] == versions
    assert {"pytorch", "onnxruntime", "onnxruntime-int8"} <= set(rows)
    for name, row in rows.items():
        assert len(row["samples_ms"]) >= 2 and row["median_ms"] > 0
        assert row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= max(row["samples_ms"])
        assert row["p99_ms"] is None  # two samples say nothing about a p99
        assert row["throughput"]["streams 2"] > 0
        assert row["check_ok"]
    assert rows["pytorch"]["peer"]["mode"] in ("eager", "jit") and set(rows["pytorch"]["peer"]["trial_median_ms"]) \
        == {"eager", "jit"}
    assert rows["onnxruntime"]["peer"]["nchwc_nodes"] >= 0 and rows["onnxruntime"]["throughput"]["batch 2"] > 0
    a = rows["onnxruntime-int8"]["agreement"]
    assert a["inputs"] >= 2 and 0 <= a["top1"] <= 1 and 0 <= a["top5_overlap"] <= 1

    e2e = result["end_to_end"]
    assert [e["version"] for e in e2e] == end_to_end_versions(versions) and e2e
    for e in e2e:
        assert e["img_s"] > 0 and e["inference_img_s"] > 0 and e["images"] == 2 and e["batch"] in (1, 8)
        assert e["decode_cpu_ms"] > 0
        assert len(e["rounds_img_s"]) == e["rounds"] and e["ratio"] == pytest.approx(e["img_s"] / e["inference_img_s"])
    from PIL import Image

    with Image.open(tmp_path / "b.png") as img:
        assert img.format == "PNG" and img.size[0] > 300


FP32_COMPILED = [v for v in FAST if registry.get(v).directory and not registry.get(v).has("int8")
                 and not registry.get(v).has("bf16")]


@pytest.mark.skipif(len(FP32_COMPILED) < 2, reason="needs two compiled fp32 versions")
def test_bench_interleaves_its_rows(weights_dir: Path, tmp_path: Path) -> None:
    """Rows compared in a ratio are measured interleaved: in every round each row makes its share of the runs, the
    order shuffled each round, so that a slow stretch of the machine lands on every row alike. Two rows, 3
    runs at least, 2 rounds: 2 runs a row a round, and the JSON says which round each sample was taken in."""
    a, b = FP32_COMPILED[-2:]
    out = tmp_path / "b.json"
    r = run_cli("bench", "--version", a, b, "--no-peers", "--weights", str(weights_dir), "--threads", "2",
                "--min-runs", "3", "--seconds", "0", "--rounds", "2", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "rows measured interleaved, 2 rounds" in r.stdout
    result = json.loads(out.read_text())
    inter = result["interleaved"]
    assert inter["rounds"] == 2 and inter["calls_per_round"] == 2 and inter["pause_s"] > 0
    from pyresnet.instruments.bench import shuffled

    assert inter["order"] == [shuffled([a, b], 0), shuffled([a, b], 1)]
    for row in result["rows"]:
        assert row["sample_rounds"] == [0, 0, 1, 1] and len(row["samples_ms"]) == 4, row["name"]

    table = report.rounds_table(result).splitlines()  # the README's per-round medians, one line a row
    assert table[0] == "| row | round 1 | round 2 |" and [line.split(" |")[0] for line in table[2:]] == [
        f"| `{a}`", f"| `{b}`"]
    old = {**result, "rows": [{k: v for k, v in row.items() if k != "sample_rounds"} for row in result["rows"]]}
    assert "one after another" in report.rounds_table(old)


def _row(name: str, per_round: list[list[float]]) -> dict:
    return {"name": name, "kind": "version", "samples_ms": [x for r in per_round for x in r],
            "sample_rounds": [k for k, r in enumerate(per_round) for _ in r]}


def test_intervals_follow_the_rounds() -> None:
    """A slow stretch that lands on both rows of a ratio (rounds 3 and 7 twice as slow) widens each row's interval
    but not the interval of their ratio, which the shared draws keep paired: b is 1.25x a in every round, and the
    ratio's interval is 1.25 alone. Two rows alike have a ratio interval that holds 1 (within noise)."""
    from pyresnet.instruments import stats

    speed = [2.0 if k in (3, 7) else 1.0 for k in range(10)]
    a = _row("a", [[10 * s, 10.1 * s, 9.9 * s] for s in speed])
    b = _row("b", [[12.5 * s, 12.625 * s, 12.375 * s] for s in speed])
    c = _row("c", [[10.05 * s, 9.95 * s, 10 * s] for s in speed])
    ra, rb, rc = stats.replicates([a, b, c])
    ia = stats.interval(ra)
    assert ia.lo <= 10 <= ia.hi and ia.hi - ia.lo > 1  # the slow rounds widen a's own interval
    ratio = stats.ratio_interval(rb, ra)
    assert ratio.lo == pytest.approx(1.25, abs=1e-9) and ratio.hi == pytest.approx(1.25, abs=1e-9)
    assert stats.ratio_interval(rc, ra).contains(1.0)


def test_goals_name_their_rows_by_rule() -> None:
    """The goals table picks each goal's rows by precision, never by number: the fastest fp32 stage that is not a
    stepping stone (v13 is faster here and is passed over), the fastest peer of a precision; a goal whose rows the
    run lacks says so. The fp32 floor is the architecture's FLOP split over the run's own peak."""
    def row(name: str, ms: float, kind: str = "version", isa: str | None = "avx512") -> dict:
        r = _row(name, [[ms, ms * 1.01] for _ in range(4)])
        return {**r, "kind": kind, "median_ms": ms, "threads": 2, "isa": isa, "throughput": {"batch 8": 1e3 / ms}}

    result = {"gflop_per_image": 8.18, "threads": 2,
              "peak": {"threads": 2, "kernels": {"fma_avx512": {"2": 235.0}, "dpbf16ps_avx512": {"2": 470.0}}},
              "rows": [row("v12", 28.0), row("v13", 25.0), row("v18", 16.0, isa="avx512_bf16"),
                       row("openvino", 40.0, "peer", None), row("openvino-bf16", 20.0, "peer", None)]}
    table = {line.split(" | ")[0].strip("| "): line for line in report.goals_table(result, None).splitlines()[2:]}
    assert "`v18` (avx512_bf16 path) | `v12` | latency <= 0.6x | 16.0 ms / 28.0 ms = 0.57x" in table["bf16 against fp32"]
    assert table["bf16 against fp32"].endswith("| yes |")
    assert "| 16.0 ms / 20.0 ms = 0.80x" in table["bf16 against the fastest bf16 peer"]
    assert "`v12` (avx512 path) | openvino | latency <= 0.75x | 28.0 ms / 40.0 ms = 0.70x" in table["fp32 at batch 1"]
    assert table["fp32 sustained throughput"].endswith("= 1.43x | yes |")
    assert "not measured in this run" in table["int8 Winograd, on a CPU with VNNI"]
    assert "not measured in this run" in table["int8 without VNNI (the AVX2 path)"]
    floor = report.fp32_floor(result)
    assert "5.17 of 8.18 GFLOP" in floor and "22.0 ms at 100% of the measured fma_avx512 peak" in floor


def test_end_to_end_rows_are_the_fastest_of_each_precision() -> None:
    """The end-to-end rows run the stage `run` defaults to (the newest fp32 stage, no stepping stone) and the
    newest int8 stage, when they were measured."""
    from pyresnet.instruments.bench import end_to_end_versions

    every = registry.versions()
    int8 = [v for v in every if registry.get(v).has("int8")]
    assert end_to_end_versions(every) == [registry.newest()] + int8[-1:]
    assert end_to_end_versions(["py", "v1"]) == []


def test_rounds_are_shuffled() -> None:
    """Every round has its own order: over 30 rounds each of 4 rows comes first, and last, at least once."""
    from pyresnet.instruments.bench import shuffled

    orders = [shuffled("abcd", r) for r in range(30)]
    assert all(sorted(o) == list("abcd") for o in orders)
    assert {o[0] for o in orders} == set("abcd") and {o[-1] for o in orders} == set("abcd")


def test_latency_rounds() -> None:
    """--rounds, but never more rounds than a row makes runs, and enough for a slow row's one run a round."""
    from pyresnet.instruments.bench import latency_rounds

    assert latency_rounds(10, 100, 3.0, 200, 3, False) == 10
    assert latency_rounds(10, 2, 0.0, 200, 3, False) == 2  # no time budget: 2 runs, 2 rounds
    assert latency_rounds(10, 1, 0.0, 1, 3, False) == 1
    assert latency_rounds(10, 5, 3.0, 200, 20, True) == 20  # v1 with --slow-runs 20
    assert latency_rounds(4, 5, 3.0, 200, 3, True) == 4


def test_a_torch_stream_leaves_the_peer_its_threads(state: dict) -> None:
    """torch's intra-op thread count is torch's, not a peer's: a stream on 1 thread (spawn) and the peer on 2 each
    run on their own count, whichever ran last."""
    import numpy as np
    import torch

    from pyresnet.instruments.peers import TorchPeer

    peer = TorchPeer(state, 2, ("eager",), trial_runs=1)
    stream = peer.spawn(1)
    x = np.zeros((224, 224, 3), np.float32)
    stream.logits(x)
    assert torch.get_num_threads() == 1 and stream.threads == 1
    peer.logits(x)
    assert torch.get_num_threads() == 2 and peer.threads == 2


def test_export_onnx_runs_in_onnxruntime(weights_dir: Path, tmp_path: Path, oracle) -> None:
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "resnet50.onnx"
    r = run_cli("export", "--onnx", str(out), "--weights", str(weights_dir))
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(4).standard_normal((2, 224, 224, 3)).astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
    for i in range(2):
        ref = oracle.logits(x[i])
        assert np.abs(got[i] - ref).max() <= 1e-3 * np.abs(ref).max()
    assert_one_line_error(run_cli("export", "--onnx", str(tmp_path), "--weights", str(weights_dir)), "--onnx")
    assert_one_line_error(run_cli("export", "--onnx", str(tmp_path / "no" / "x.onnx"), "--weights",
                                  str(weights_dir)), "does not exist")


def test_bench_peak() -> None:
    """One line per dot-product instruction this CPU has: fp32 FMA and the exact int8 pair always (x86-64 with
    AVX2), the AVX-512 ones where CPUID says so."""
    from pyresnet import _peak

    r = run_cli("bench", "--peak", "--threads", "1")
    assert r.returncode == 0, r.stderr
    names = [line.split(":")[0].strip() for line in r.stdout.splitlines() if "GOP/s on 1 thread" in line]
    assert names == [k for k, _ in _peak.kernels()] and {"fma_avx2", "maddwd_avx2"} <= set(names)
    assert ("fma_avx512" in names) == _peak.has_avx512()


def test_peak_kernels() -> None:
    """Every kernel runs and counts its operations: on one core the fp32 FMA on ymm does 2 x 8 x (FMA pipes)
    operations a cycle, so between 1 and 200 GOP/s on any CPU of the last decade; an instruction this CPU lacks,
    or a nonsense argument, is a ValueError, never an illegal instruction."""
    from pyresnet import _peak

    for name, what in _peak.kernels():
        assert _peak.gops(name, 1, 200_000) > 1, name
        assert what
    assert 1 < _peak.gops("fma_avx2", 1, 2_000_000) < 200
    for bad in [("no_such", 1, 10), ("fma_avx2", 0, 10), ("fma_avx2", 1, 0)]:
        with pytest.raises(ValueError):
            _peak.gops(*bad)
    missing = {"fma_avx512", "dpbf16ps_avx512", "dpbusd_avx512", "maddwd_avx512"} - {k for k, _ in _peak.kernels()}
    for name in missing:
        with pytest.raises(ValueError, match="no instructions"):
            _peak.gops(name, 1, 10)


@pytest.mark.parametrize("args,fragment", [
    (["bench", "--version", "v77"], "unknown version"),
    (["bench", "--threads", "0"], "--threads"),
    (["bench", "--seconds", "-1", "--no-peers", "--version", "py"], "--seconds"),
    (["bench", "--streams", "3", "--threads", "2", "--no-peers", "--version", "py"], "--streams"),
    (["bench", "--batch", "0", "--no-peers", "--version", "py"], "--batch"),
    (["bench", "--torch-modes", "turbo", "--version", "py"], "--torch-modes"),
    (["diff", "v1"], "two versions"),
    (["diff", "v1", "v99"], "unknown version"),
    (["diff", "py", "v1"], "numpy reference"),
])
def test_instrument_errors(args: list[str], fragment: str, weights_dir: Path) -> None:
    if args[0] == "bench":
        args = [*args, "--weights", str(weights_dir)]
    assert_one_line_error(run_cli(*args), fragment)


def test_diff_identical_and_by_directory_name() -> None:
    v = registry.get(COMPILED[0])
    r = run_cli("diff", v.key, v.directory, "--stat")
    assert r.returncode == 0 and "no differences" in r.stdout


@pytest.mark.skipif(len(COMPILED) < 2, reason="needs two compiled versions")
def test_diff_pairs_files(tmp_path: Path) -> None:
    a, b = registry.get(COMPILED[0]), registry.get(COMPILED[1])
    r = run_cli("diff", a.key, b.key)
    assert r.returncode == 0 and f"--- a/{a.directory}/" in r.stdout and f"+++ b/{b.directory}/" in r.stdout
    assert "network.cpp" in r.stdout or "ops/conv2d.cpp" in r.stdout
    r = run_cli("diff", a.key, b.key, "--stat")
    assert "files changed" in r.stdout and "README.md" in r.stdout
    r = run_cli("diff", "--chain")
    assert f"{a.key} -> {b.key}" in r.stdout
    assert run_cli("diff", a.key, b.key, "--html", str(tmp_path / "d.html")).returncode == 0
    page = (tmp_path / "d.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "README.md" in page and a.directory in page


def test_info() -> None:
    r = run_cli("info")
    assert r.returncode == 0
    for v in pyresnet.versions():
        assert f"  {v} " in r.stdout
    assert "CPU:" in r.stdout and "weights:" in r.stdout


@pytest.mark.parametrize("version", pyresnet.versions())
def test_profile_records_every_layer(version: str, models) -> None:
    """53 conv layers (with their BN/ReLU), the 16 residual adds, maxpool, avgpool, fc, in execution order. A
    version that fuses the add into conv3's store (v7 on) records it in conv3's op instead of as a layer."""
    from conftest import noise

    records = models(version).native.profile(noise(0))
    names = [r[0] for r in records]
    ops = {r[0]: r[1] for r in records}
    assert names[0] == "conv1" and names[1] == "maxpool" and names[-2:] == ["avgpool", "fc"]
    adds = sum(1 for n in names if n.endswith(".add"))
    fused = sum(1 for n in names if n.endswith(".conv3") and "+add" in ops[n])
    assert (adds, fused) in ((16, 0), (0, 16)), (adds, fused)
    assert len(records) == 56 + adds
    from pyresnet import arch

    flops = {r[0]: r[3] for r in records}
    for c in arch.convs():
        assert flops[c.name] == 2 * c.macs, c.name
    assert all(r[4] >= 0 for r in records)


def test_profile_cli(calibrated_dir: Path) -> None:
    r = run_cli("profile", "-v", "py", "--weights", str(calibrated_dir), "--runs", "1", "--by-op")
    assert r.returncode == 0, r.stderr
    assert "| layer | op | output | MFLOP | ms | GFLOP/s | % of total |" in r.stdout
    assert "| layer4.2.conv3 | conv1x1+bn | 7x7x2048 |" in r.stdout and "| op | layers |" in r.stdout
    fast = FAST[-1]
    r = run_cli("profile", "--compare", "py", fast, "--weights", str(calibrated_dir), "--runs", "1")
    assert r.returncode == 0 and f"| py ms | {fast} ms | speedup |" in r.stdout
