"""What a `pyresnet bench` result says, rendered: the console table and the plot (`bench`), and the README's version
tables, its story lines, its goals table and fp32 floor, and every stage README's `Measured:` line
(bench/update_readme.py).

It reads the result dict (a `bench.run` return value or a results JSON) and measures nothing. Every figure comes from
one derived() per row, so the console, the plot and the READMEs cannot compute the same figure two ways. Results
files written before a field existed render as they did then: a row without a peer description is labelled with
its bare name, a result without the `interleaved` record says nothing about how its rows were ordered.
"""

from __future__ import annotations

import statistics

from pathlib import Path
from typing import Any

from .. import registry
from ..errors import UnknownVersionError, UserError
from ..safeio import write_file
from . import peers, stats

P99_SAMPLES = 100  # fewer samples than this and p99 is not reported: it would be the maximum


def throughput_keys(result: dict[str, Any]) -> list[str]:
    """The throughput settings measured in a result, in order: 'batch 8', 'batch 32', 'streams 2'."""
    keys = [f"batch {b}" for b in result.get("batches", []) if b > 1]
    if result.get("streams", 1) > 1:
        keys.append(f"streams {result['streams']}")
    if any("async" in r.get("throughput", {}) for r in result["rows"]):
        keys.append("async")
    return keys


def _builds_on(name: str) -> str | None:
    """The key of the stage `name` builds on, or None for names the registry does not know (old results files)."""
    try:
        b = registry.get(name).builds_on
    except UnknownVersionError:  # a results file may name a stage this checkout no longer has
        return None
    return b.key if b is not None else None


def precision(row: dict[str, Any]) -> str:
    """'fp32', 'bf16' or 'int8': the number format a row multiplies in (a version's features, a peer's spec)."""
    if row["kind"] == "peer":
        spec = peers.get(row["name"])
        return spec.precision if spec else "fp32"
    try:
        v = registry.get(row["name"])
    except UnknownVersionError:
        return "fp32"
    return "int8" if v.has("int8") else "bf16" if v.has("bf16") else "fp32"


# The peak kernel (pyresnet._peak) each path multiplies with: by precision, then by the path the row reported.
_PATH_KERNEL = {
    "fp32": {"avx512": "fma_avx512", "avx2": "fma_avx2"},
    "bf16": {"avx512_bf16": "dpbf16ps_avx512", "avx512": "fma_avx512", "avx2": "fma_avx2"},
    "int8": {"avx512_vnni": "dpbusd_avx512", "avx512": "maddwd_avx512", "avx2": "maddwd_avx2"},
    # the int8 stages with 7-bit weights: vpmaddubsw where there is no VNNI
    "int8-7bit": {"avx512_vnni": "dpbusd_avx512", "avx512": "maddubsw_avx512", "avx2": "maddubsw_avx2"},
}
# A peer does not say which instructions it uses: the best of its precision this CPU has.
_PEER_KERNELS = {"fp32": ("fma_avx512", "fma_avx2"), "bf16": ("dpbf16ps_avx512", "fma_avx512", "fma_avx2"),
                 "int8": ("dpbusd_avx512", "maddubsw_avx512", "maddubsw_avx2", "maddwd_avx512", "maddwd_avx2")}


def peak_table(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Every peak measured in a result: kernel -> {threads: GOP/s}. Results written before the per-instruction
    peaks have the fp32 FMA ones only (under 'avx2' and 'avx512')."""
    peak = result["peak"]
    if "kernels" in peak:
        return {k: {t: v for t, v in d.items() if t != "what"} for k, d in peak["kernels"].items()}
    return {f"fma_{isa}": peak[isa] for isa in ("avx2", "avx512") if isa in peak}


def peak_kernel(result: dict[str, Any], row: dict[str, Any]) -> str | None:
    """The peak a row is measured against: the instruction its own precision and path multiply with."""
    table = peak_table(result)
    prec = precision(row)
    if row["kind"] == "version":
        if prec == "int8" and registry.get(row["name"]).has("weight_bits"):
            prec = "int8-7bit"
        k = _PATH_KERNEL[prec].get(row.get("isa") or "avx2")
        return k if k in table else None
    return next((k for k in _PEER_KERNELS[prec] if k in table), None)


def _peak_gops(result: dict[str, Any], kernel: str | None, threads: int) -> float:
    """The kernel's peak on `threads` threads (on the run's thread count when that one was not measured); the
    fp32 figure of an old result when the kernel is unknown."""
    if kernel is None:
        return result["peak"]["gflops"]
    d = peak_table(result)[kernel]
    return d.get(str(threads), d[str(result["peak"].get("threads", result["threads"]))])


def derived(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row: the median latency and its 95% interval (stats: bootstrap over rounds), batch-1 img/s, best
    sustained img/s and where, GOP/s and the share of the peak of the row's own instruction, and its ratios with
    intervals: speedup over v1 and over the stage it builds on, latency over the fastest peer of its precision; and
    the bootstrap replicates of its median ("replicates"), for the ratio of any two rows of the run."""
    rows = result["rows"]
    reps = stats.replicates(rows)
    rep = {r["name"]: x for r, x in zip(rows, reps)}
    by_name = {r["name"]: r for r in rows}
    v1 = by_name.get("v1")
    fastest_peer: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] == "peer":
            p = precision(r)
            if p not in fastest_peer or r["median_ms"] < fastest_peer[p]["median_ms"]:
                fastest_peer[p] = r
    prev = None
    out = []
    for r in rows:
        med = r["median_ms"]
        d = {"p99_ms": None, "throughput": {}, "agreement": {}, "peer": {}, **r, "img_s": 1e3 / med,
             "gflops": result["gflop_per_image"] / (med / 1e3), "precision": precision(r),
             "ci_ms": stats.interval(rep[r["name"]]), "replicates": rep[r["name"]]}
        d["peak_kernel"] = peak_kernel(result, r)
        d["pct_peak"] = 100 * d["gflops"] / _peak_gops(result, d["peak_kernel"], r["threads"])
        d["vs_v1"] = v1["median_ms"] / med if v1 else None
        d["vs_v1_ci"] = stats.ratio_interval(rep["v1"], rep[r["name"]]) if v1 else None
        best = max([("batch 1", d["img_s"])] + list(d["throughput"].items()), key=lambda kv: kv[1])
        d["best_img_s"], d["best_setting"] = best[1], best[0]
        d["vs_prev"] = d["vs_prev_ci"] = d["vs_peer"] = d["vs_peer_ci"] = d["peer_name"] = None
        if r["kind"] == "version" and r["name"] != "py":
            base = _builds_on(r["name"])
            if base is not None and base in by_name:
                prev = by_name[base]  # the stage this one builds on, when it was measured too
            if prev:
                d["vs_prev"] = prev["median_ms"] / med
                d["vs_prev_ci"] = stats.ratio_interval(rep[prev["name"]], rep[r["name"]])
            d["prev_name"] = prev["name"] if prev else None
            prev = r
        if r["kind"] == "version" and d["precision"] in fastest_peer:
            p = fastest_peer[d["precision"]]
            d["peer_name"] = label({**p, "kind": "peer"})
            d["vs_peer"] = med / p["median_ms"]
            d["vs_peer_ci"] = stats.ratio_interval(rep[r["name"]], rep[p["name"]])
        out.append(d)
    return out


def fmt_ratio(x: float | None, ci: stats.Interval | None, noise: bool = True) -> str:
    """'1.91x [1.85, 1.97]', with ', within noise' when the interval holds 1; '-' for no ratio."""
    if x is None:
        return "-"
    if ci is None:
        return f"{x:.2f}x"
    said = ", within noise" if noise and ci.contains(1.0) else ""
    return f"{x:.2f}x [{ci.lo:.2f}, {ci.hi:.2f}{said}]"


def fmt_latency(d: dict[str, Any]) -> str:
    """'46.3 ms [45.9, 46.8]': the median and its 95% interval."""
    ci = d["ci_ms"]
    return f"{fmt_ms(d['median_ms'])} [{_fmt_like(ci.lo, d['median_ms'])}, {_fmt_like(ci.hi, d['median_ms'])}]"


def _fmt_like(x: float, ref: float) -> str:
    """x in the unit and precision fmt_ms gives ref, without the unit."""
    if ref >= 10_000:
        return f"{x / 1e3:.1f}"
    return f"{x:.0f}" if ref >= 100 else f"{x:.1f}"


def peaks_line(result: dict[str, Any]) -> str:
    """'fma_avx2 232, fma_avx512 233, ... GOP/s on 2 threads': every peak of the run on its thread count."""
    t = str(result["peak"].get("threads", result["threads"]))
    return ", ".join(f"{k} {v.get(t, max(v.values())):.0f}" for k, v in peak_table(result).items()) + \
        f" GOP/s on {t} thread(s)"


def label(d: dict[str, Any]) -> str:
    """A row's name as the tables and the plot show it: a version's key, or a peer's label ('pytorch (jit)')."""
    return d["name"] if d["kind"] == "version" else peers.label(d["name"], d.get("peer", {}))


def how_measured(result: dict[str, Any]) -> str:
    """'; rows measured interleaved, 10 rounds' for a result that records it; '' for older ones."""
    inter = result.get("interleaved")
    return f"; rows measured interleaved, {inter['rounds']} rounds" if inter else ""


def end_to_end(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The end-to-end rows of a result: a list (one per stage), or the one row older files have, or none."""
    e2e = result.get("end_to_end")
    return [] if not e2e else [e2e] if isinstance(e2e, dict) else list(e2e)


def fmt_ms(ms: float) -> str:
    return f"{ms / 1e3:.1f} s" if ms >= 10_000 else f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


# ------------------------------------------------------------------------------------------------ the console

def markdown(result: dict[str, Any]) -> str:
    """The console table: every row with its latency percentiles, throughput, GFLOP/s, speedups and check."""
    m = result["machine"]
    keys = throughput_keys(result)
    rows = derived(result)
    lines = [
        f"{m['cpu']} {m.get('microarchitecture', '')}, {m['cpus_allowed']} CPUs allowed, {result['threads']} "
        f"thread(s); peaks: {peaks_line(result)} (measured); {result['gflop_per_image']:.2f} GFLOP per image"
        f"{how_measured(result)}",
        "",
        "| version | threads | p50 ms [95% CI] | p90 ms | p99 ms | img/s batch 1 | "
        + "".join(f"img/s {k} | " for k in keys) + "GOP/s | % own peak | vs v1 | vs prev [95% CI] | "
        "vs fastest peer | runs | check |",
        "|---|---|---|---|---|---|" + "---|" * len(keys) + "---|---|---|---|---|---|---|",
    ]
    fmt = lambda v, f="{:.1f}x": "-" if v is None else f.format(v)  # noqa: E731
    for d in rows:
        runs = f"{len(d['samples_ms'])}" + (" (capped)" if d["capped"] else "")
        if d["agreement"]:
            a = d["agreement"]
            ok = f"agreement: top-1 {a['top1']:.0%}, top-5 {a['top5_overlap']:.0%}"
        else:
            ok = "ok" if d["check_ok"] else "**FAIL**"
        name = d["name"] if d["kind"] == "version" else f"*{label(d)}*"
        tp = "".join(f"{fmt(d['throughput'].get(k), '{:.1f}')} | " for k in keys)
        ci = d["ci_ms"]
        peer = f"{fmt_ratio(d['vs_peer'], d['vs_peer_ci'], False)} {d['peer_name']}" if d["vs_peer"] else "-"
        lines.append(f"| {name} | {d['threads']} | {d['median_ms']:.1f} [{ci.lo:.1f}, {ci.hi:.1f}] | "
                     f"{d['p90_ms']:.1f} | {fmt(d['p99_ms'], '{:.1f}')} | {d['img_s']:.1f} | {tp}{d['gflops']:.1f} | "
                     f"{d['pct_peak']:.0f}% {d['peak_kernel'] or ''} | {fmt(d['vs_v1'])} | "
                     f"{fmt_ratio(d['vs_prev'], d['vs_prev_ci'])} | {peer} | {runs} | {ok} |")
    notes = []
    if any(d["capped"] for d in rows):
        notes.append("capped: versions marked slow run a fixed few times instead of the time budget")
    if keys:
        notes.append("'-' under a batch: the row has no native batch (its batch would be its images one by one)")
    notes.append(f"p99 only from {P99_SAMPLES} samples up")
    for e2e in end_to_end(result):
        notes.append(f"end to end (`run` over {e2e['images']} photos, decode included, {e2e['version']}, batch "
                     f"{e2e['batch']}, {e2e['readers']} reader(s)): {e2e['img_s']:.1f} img/s, {e2e['ratio']:.0%} of "
                     f"its inference alone ({e2e['inference_img_s']:.1f} img/s)")
    lines += [""] + [f"{n}." for n in notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the plot

def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or one sentence saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from None
    return plt


def plot_format(path: Path) -> str:
    """The image format a plot file's name asks for (its suffix; PNG without one)."""
    return Path(path).suffix[1:].lower() or "png"


def plot(result: dict[str, Any], path: Path) -> None:
    """Two panels: latency per row (log scale) and best sustained throughput per row, titled with the machine;
    written through safeio.write_file (in the format the file name says, PNG by default)."""
    plt = pyplot()
    rows = derived(result)
    names = [label(r) for r in rows]
    colors = ["#4a7ab5" if r["kind"] == "version" else "#d62728" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    err = [[r["median_ms"] - r["ci_ms"].lo for r in rows], [r["ci_ms"].hi - r["median_ms"] for r in rows]]
    ax1.bar(names, [r["median_ms"] for r in rows], color=colors, yerr=err, capsize=2)
    for n, r in zip(names, rows):
        ax1.annotate(f"{r['median_ms']:.0f}", (n, r["median_ms"]), ha="center", va="bottom", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_ylabel("latency per image, batch 1, ms (log scale; bars: 95% interval)")
    ax2.bar(names, [r["best_img_s"] for r in rows], color=colors)
    for n, r in zip(names, rows):
        ax2.annotate(f"{r['best_img_s']:.0f}\n{r['best_setting']}", (n, r["best_img_s"]), ha="center",
                     va="bottom", fontsize=6)
    ax2.set_ylabel("best sustained throughput, images/s")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    m = result["machine"]
    fig.suptitle(f"ResNet-50, {result['threads']} thread(s): {m['cpu']} {m.get('microarchitecture', '')} "
                 f"({m['cpus_allowed']} CPUs); blue: our stages, red: peers")
    fig.tight_layout()
    try:
        write_file(path, lambda f: fig.savefig(f, format=plot_format(path), dpi=110), UserError, "--plot")
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ the READMEs

def directory(result: dict[str, Any], row: dict[str, Any]) -> str | None:
    """The stage directory a row measured (older files keep it in machine.versions only)."""
    return row.get("directory") or result["machine"].get("versions", {}).get(row["name"], {}).get("directory")


def _registered(result: dict[str, Any], row: dict[str, Any]) -> registry.Version | None:
    """The registry's entry for the stage a row measured, when this checkout still has it as it was."""
    d = directory(result, row)
    return next((v for v in registry.REGISTRY if v.key == row["name"] and v.directory == d), None)


def summary(result: dict[str, Any], row: dict[str, Any]) -> str:
    """What the row's stage changed: as recorded in the results file, else the registry's words for the same
    directory, else a pointer to the stage's history."""
    if row.get("summary"):
        return row["summary"]
    v = _registered(result, row)
    return v.summary if v else (f"`{directory(result, row)}`, a stage of an earlier layout (its README: "
                                f"`git log -- csrc/{directory(result, row)}`)")


def machine_line(result: dict[str, Any]) -> str:
    m = result["machine"]
    uarch = f", {m['microarchitecture']}" if m.get("microarchitecture") else ""
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni") if m["simd"].get(f))
    return f"{m['cpu']}{uarch} ({m['cpus_allowed']} CPUs; {isa})"


def readme_table(result: dict[str, Any]) -> str:
    """The README's version table of a result, with the machine, end-to-end and command lines under it: one figure
    per row (the median and its 95% interval), the ratios with theirs."""
    rows = derived(result)
    keys = throughput_keys(result)
    throughput = bool(keys)
    out = ["| version | what changed | threads | latency, median [95% CI] | p99 | "
           + ("best img/s (how) | " if throughput else "") + "speedup vs v1 / vs the stage before [95% CI] | "
           "latency / fastest peer of its precision [95% CI] | GOP/s (% of its own peak) | the original |",
           "|---|---|---|---|---|" + ("---|" if throughput else "") + "---|---|---|---|"]
    for r in rows:
        if r["kind"] == "version":
            d = directory(result, r)
            v = _registered(result, r)
            name = f"`{r['name']}`" if d is None else (
                f"`{r['name']}` [{d}](csrc/{d}/README.md)" if v else f"`{r['name']}` {d}")
            what = summary(result, r) + (f" ({r['isa']} path)" if r.get("isa") else "")
            orig = f"{v.original_ms:.0f} ms" if v and v.original_ms else "-"
        else:
            name, orig = f"*{label(r)}*", "-"
            what = "peer: the same network and weights, run the way it is fastest here"
        if r.get("agreement"):
            a = r["agreement"]
            what += (f"; agreement with fp32 on {a['inputs']} inputs: top-1 {a['top1']:.0%}, top-5 overlap "
                     f"{a['top5_overlap']:.0%}, max logit error {a['rel_diff_max']:.1%} of the largest")
        speed = "-" if r["vs_v1"] is None else f"{r['vs_v1']:.1f}x"
        if r["vs_prev"] is not None:
            speed += f" / {fmt_ratio(r['vs_prev'], r['vs_prev_ci'])}"
        capped = " (capped runs)" if r["capped"] else ""
        lat = fmt_latency(r) + capped
        p99 = fmt_ms(r["p99_ms"]) if r.get("p99_ms") else "-"
        peer = f"{fmt_ratio(r['vs_peer'], r['vs_peer_ci'], False)} {r['peer_name']}" if r["vs_peer"] else "-"
        best = f"{r['best_img_s']:.1f} ({r['best_setting']}) | " if throughput else ""
        own = f" of {r['peak_kernel']}" if r["peak_kernel"] else ""
        out.append(f"| {name} | {what} | {r['threads']} | {lat} | {p99} | {best}{speed} | {peer} | "
                   f"{r['gflops']:.1f} ({r['pct_peak']:.0f}%{own}) | {orig} |")
    m = result["machine"]
    env = "".join(f" {k}={v}" for k, v in result.get("env", {}).items())
    out += ["", f"Machine: {machine_line(result)}, {m['os']}; --threads {result['threads']} asked of every row (the "
                f"threads column is what each row used); peaks measured by `pyresnet bench --peak`: "
                f"{peaks_line(result)}; {result['gflop_per_image']:.2f} GFLOP per image (2 operations per "
                f"multiply-accumulate, the unit of every peak); latency: one `logits()` call, batch 1, random "
                f"weights{how_measured(result)}; intervals: 95%, bootstrap over rounds"
                + ("; throughput: the best of batch 1, " + ", ".join(keys) + " (sustained images per second)"
                   if throughput else "") + "."]
    for e2e in end_to_end(result):
        alone = ("alternated with" if "rounds_img_s" in e2e else "the inference calls within")
        bound = ""
        if "decode_cpu_ms" in e2e:
            infer_ms = e2e["threads"] * 1e3 / e2e["inference_img_s"]  # core-ms an image, every thread busy
            bound = (f" An image costs {e2e['decode_cpu_ms']:.1f} ms of CPU to decode and preprocess and "
                     f"{infer_ms:.1f} core-ms of inference, so even a perfect overlap on {e2e['threads']} cores "
                     f"would reach {infer_ms / (infer_ms + e2e['decode_cpu_ms']):.0%}.")
        out.append(f"End to end: `pyresnet run` over {e2e['images']} photos (decoding included, {e2e['version']}, "
                   f"batch {e2e['batch']}, {e2e['readers']} reader thread(s), {e2e['threads']} inference threads): "
                   f"{e2e['img_s']:.1f} img/s, {e2e['ratio']:.0%} of the same model's inference alone "
                   f"({e2e['inference_img_s']:.1f} img/s; {alone} the pipeline, {e2e['rounds']} rounds).{bound}")
    out.append(f"Command:{env} `{result.get('command', 'pyresnet bench --all')}`.")
    return "\n".join(out)


def rounds_table(result: dict[str, Any]) -> str:
    """The median latency of every row in every round of an interleaved run, in ms: a stretch of the host's speed
    shows as a column in which every row moved. An older run, measured one row after another, has none."""
    rows = [r for r in derived(result) if r.get("sample_rounds") and not r["capped"]]
    if not rows:
        return "(this run measured its rows one after another: no rounds to show)"
    rounds = sorted({k for r in rows for k in r["sample_rounds"]})
    out = ["| row | " + " | ".join(f"round {k + 1}" for k in rounds) + " |", "|---|" + "---|" * len(rounds)]
    for r in rows:
        per = {k: [s for s, j in zip(r["samples_ms"], r["sample_rounds"]) if j == k] for k in rounds}
        name = f"`{r['name']}`" if r["kind"] == "version" else f"*{label(r)}*"
        out.append(f"| {name} | " + " | ".join(fmt_ms(statistics.median(per[k])) if per[k] else "-" for k in rounds)
                   + " |")
    return "\n".join(out)


def tail_line(result: dict[str, Any]) -> str:
    """Every row's p99 over its median at batch 1 (rows with a p99: 100 samples and more), ours then the peers'."""
    rows = [r for r in derived(result) if r.get("p99_ms")]
    part = lambda kind: ", ".join(f"{label(r)} {r['p99_ms'] / r['median_ms']:.2f}"  # noqa: E731
                                  for r in rows if r["kind"] == kind)
    return f"p99 / median at batch 1, this run: {part('version')}; the peers: {part('peer')}."


def preprocess_table(result: dict[str, Any]) -> str:
    """The preprocessing cost of each photo (bench/preprocess_cost.py --json): its size, the scale it is decoded at,
    the CPU of one call before the reduced decode and now, and how far the result lands from the full decode's and
    from torchvision's, with the machine and the command under it."""
    out = ["| photo | size | decoded at | CPU before | CPU now | now / before | now vs full decode, mean / max | "
           "full decode vs torchvision | now vs torchvision |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["images"]:
        dec = "in full" if r["reduction"] == 1 else f"1/{r['reduction']} ({r['decoded'][0]} x {r['decoded'][1]})"
        tv = [f"{r[k]:.4f}" if k in r else "-" for k in ("exact_vs_torchvision_mean", "reduced_vs_torchvision_mean")]
        out.append(f"| {r['image']} | {r['width']} x {r['height']} | {dec} | {r['before_ms']:.1f} ms | "
                   f"{r['reduced_ms']:.1f} ms | {r['ratio']:.2f} | {r['diff_vs_exact_mean']:.4f} / "
                   f"{r['diff_vs_exact_max']:.3f} | {tv[0]} | {tv[1]} |")
    t = result["total"]
    out.append(f"| **all** | | | {t['before_ms']:.1f} ms | {t['reduced_ms']:.1f} ms | **{t['ratio']:.2f}** | | | |")
    m = result.get("machine") or {}
    cpu = f"{m.get('cpu', '?')} {m.get('microarchitecture', '')}".strip()
    out += ["", f"Machine: {cpu} ({m.get('cpus_allowed', '?')} CPUs), OpenCV {result['opencv']}; CPU time of one "
                f"`preprocess()` call (every thread of the process), median of {result['runs']}, the modes "
                f"interleaved call by call; differences in normalised units (the network's input), mean absolute "
                f"unless said; command: `{result['command']}`."]
    return "\n".join(out)


def story(result: dict[str, Any]) -> str:
    """One line per stage: what it changed and what that bought, with the interval of the ratio; a step whose
    interval holds 1 is said to be within noise."""
    lines = []
    for r in derived(result):
        if r["kind"] != "version" or r["name"] == "py":
            continue
        gain = ""
        if r["vs_prev"] is not None:
            ci = r["vs_prev_ci"]
            gain = f", {fmt_ratio(r['vs_prev'], ci, False)} {r['prev_name']}"
            if ci.contains(1.0):
                gain += " (within noise)"
        own = f" ({r['peak_kernel']})" if r["peak_kernel"] else ""
        lines.append(f"- **{r['name']}** ({summary(result, r)}): {fmt_latency(r)} on {r['threads']} thread(s){gain}, "
                     f"{r['pct_peak']:.0f}% of its own peak{own}.")
    return "\n".join(lines)


def measured_line(v: registry.Version, result: dict[str, Any], path: str,
                  avx2: tuple[dict[str, Any], str] | None) -> str:
    """The Measured: line of stage v's README, from the result at `path` (and, for a stage with several
    instruction sets, its AVX2 path from the result avx2 = (result, its path))."""
    rows = {r["name"]: r for r in derived(result)}
    r = rows.get(v.key)
    if r is None or directory(result, r) != v.directory:
        return f"Measured:    not yet measured on the machine of {path} (run the command in bench/README.md)"
    m = result["machine"]
    flags = m["versions"][v.key]["flags"]
    compiler = m["versions"][v.key]["compiler"]
    prev = v.builds_on
    head = f"median {fmt_latency(r)}/img"
    if prev is not None and prev.key in rows:
        p = rows[prev.key]
        noise = " (within noise)" if r["vs_prev_ci"].contains(1.0) else ""
        head = (f"median {fmt_latency(p)} ({p['name']}, {p['threads']} thread(s)) -> {fmt_latency(r)}/img "
                f"({fmt_ratio(r['vs_prev'], r['vs_prev_ci'], False)}{noise}; {r['vs_v1']:.0f}x v1)")
    elif r["capped"]:
        head += f" ({len(r['samples_ms'])} capped runs)"
    isa = f", {r['isa']} path" if r.get("isa") else ""
    own = f" ({r['peak_kernel']})" if r["peak_kernel"] else ""
    extra = ""
    if avx2 and r.get("isa") and r["isa"] != "avx2":
        a = {x["name"]: x for x in derived(avx2[0])}.get(v.key)
        if a and a.get("isa") == "avx2":
            extra = f"; the avx2 path on the same CPU: {fmt_latency(a)} ({avx2[1]})"
    peer = f"; {fmt_ratio(r['vs_peer'], r['vs_peer_ci'], False)} the latency of {r['peer_name']}" if r["vs_peer"] \
        else ""
    peer_rows = ", ".join(f"{label(x)} {fmt_ms(x['median_ms'])}" for x in rows.values() if x["kind"] == "peer")
    peer_rows = f"; peers in the same run: {peer_rows}" if peer_rows else ""
    return (f"Measured:    {head}, {r['threads']} thread(s){isa}, {r['pct_peak']:.0f}% of its own peak{own}{extra}"
            f"{peer}{peer_rows}; {machine_line(result)}, {compiler} {flags}; `{result.get('command')}` ({path})")


# The goals the stages are measured against: (what, the row measured, the row it is compared with, the bound on the
# ratio, whether the ratio is of latency (at most) or of best throughput (at least), which result: the main run or the
# one forced onto the AVX2 path). A row is named by a rule, never by a stage number: "stage:P" is the fastest stage
# of precision P (stepping stones aside), "peer:P" the fastest peer of P, "feature:F" the fastest stage with registry
# feature F; fastest at batch 1 for a latency goal, by best sustained img/s for a throughput goal.
GOALS = (
    ("int8 Winograd, on a CPU with VNNI", "feature:int8_winograd", "peer:int8", 0.7, "latency", "main"),
    ("int8 without VNNI (the AVX2 path)", "stage:int8", "stage:fp32", 0.6, "latency", "avx2"),
    ("bf16 against fp32", "stage:bf16", "stage:fp32", 0.6, "latency", "main"),
    ("bf16 against the fastest bf16 peer", "stage:bf16", "peer:bf16", 0.85, "latency", "main"),
    ("fp32 at batch 1", "stage:fp32", "peer:fp32", 0.75, "latency", "main"),
    ("fp32 sustained throughput", "stage:fp32", "peer:fp32", 1.3, "throughput", "main"),
)


def fp32_winograd_tile(h: int) -> int:
    """The Winograd tile the fp32 Winograd stages give a 3x3 stride-1 conv on an h x h input (wino_tile() in
    csrc/v12_batch/network.cpp): F(4x4) from 28x28 up, else F(2x2). fp32_floor() counts their GEMMs' work with it."""
    return 4 if h >= 28 else 2


def _pick(rows: list[dict[str, Any]], rule: str, throughput: bool = False) -> dict[str, Any] | None:
    """The row a GOALS rule names (see GOALS): the fastest at batch 1, or with throughput the one with the best
    sustained img/s; None when the result has none."""
    kind, what = rule.split(":")
    if kind == "peer":
        cands = [r for r in rows if r["kind"] == "peer" and r["precision"] == what]
    else:
        cands = []
        for r in rows:
            if r["kind"] != "version" or r["name"] == "py":
                continue
            try:
                v = registry.get(r["name"])
            except UnknownVersionError:
                continue
            if v.stepping_stone:
                continue
            if (kind == "stage" and r["precision"] == what) or (kind == "feature" and v.has(what)):
                cands.append(r)
    if throughput:
        return max(cands, key=lambda r: r["best_img_s"], default=None)
    return min(cands, key=lambda r: r["median_ms"], default=None)


def goals_table(result: dict[str, Any], avx2: dict[str, Any] | None) -> str:
    """Each goal of GOALS against the result (and the AVX2-path result): the two rows, their ratio with its 95%
    interval, and whether the bound is met (by the median; 'within noise' when the interval straddles the bound)."""
    derived_of = {"main": derived(result), "avx2": derived(avx2) if avx2 else []}
    out = ["| goal | row | against | bound | measured | met |", "|---|---|---|---|---|---|"]
    for what, a_rule, b_rule, bound, kind, which in GOALS:
        rows = derived_of[which]
        a, b = _pick(rows, a_rule, kind == "throughput"), _pick(rows, b_rule, kind == "throughput")
        if a is None or b is None:
            out.append(f"| {what} | - | - | - | not measured in this run | - |")
            continue
        if kind == "latency":
            x = a["median_ms"] / b["median_ms"]
            ci = stats.ratio_interval(a["replicates"], b["replicates"])
            met = "yes" if x <= bound else "no"
            if ci.contains(bound):
                met += " (within noise)"
            measured = f"{fmt_ms(a['median_ms'])} / {fmt_ms(b['median_ms'])} = {fmt_ratio(x, ci, False)}"
            limit = f"latency <= {bound}x"
        else:
            x = a["best_img_s"] / b["best_img_s"]
            met = "yes" if x >= bound else "no"
            measured = (f"{a['best_img_s']:.1f} img/s ({a['best_setting']}) / {b['best_img_s']:.1f} img/s "
                        f"({b['best_setting']}) = {x:.2f}x")
            limit = f"throughput >= {bound}x"
        path = f" ({a['isa']} path)" if a.get("isa") else ""
        out.append(f"| {what} | `{a['name']}`{path} | {label(b) if b['kind'] == 'peer' else '`' + b['name'] + '`'} | "
                   f"{limit} | {measured} | {met} |")
    return "\n".join(out)


def fp32_floor(result: dict[str, Any]) -> str:
    """What the fp32 goal at batch 1 asks of the FMA unit: the time the convs no stage runs by Winograd need at the
    run's measured FMA peak and at the fastest fp32 peer's share of it, and what would be left for the 3x3 stride-1
    convs, against what the fastest fp32 stage's Winograd GEMMs alone need at that peak."""
    from .. import arch  # the FLOP split is the architecture's, not a measurement

    rows = derived(result)
    stage, peer = _pick(rows, "stage:fp32"), _pick(rows, "peer:fp32")
    if stage is None or peer is None or stage.get("peak_kernel") is None:
        return "The fp32 floor: not measured in this run."

    def gflop(cs: list[arch.Conv]) -> float:
        return 2 * sum(c.macs for c in cs) / 1e9

    def gemm_gflop(c: arch.Conv) -> float:
        """A Winograd conv's GEMM work: (m + 2)^2 / m^2 multiplies per output and input channel instead of 9."""
        m = fp32_winograd_tile(c.hin)
        return 2 * c.macs * (m + 2) ** 2 / (9 * m * m) / 1e9

    convs = arch.convs()
    winograd = [c for c in convs if c.kernel == 3 and c.stride == 1]
    rest = gflop([c for c in convs if c not in winograd])
    wino = sum(gemm_gflop(c) for c in winograd)
    peak = _peak_gops(result, stage["peak_kernel"], stage["threads"])
    bound = next(g[3] for g in GOALS if g[1:3] == ("stage:fp32", "peer:fp32") and g[4] == "latency")
    target = bound * peer["median_ms"]
    at_peak, at_peer = 1e3 * rest / peak, 1e3 * rest / peer["gflops"]
    return (f"The convs no stage runs by Winograd (1x1, strided 3x3, the 7x7 stem: {rest:.2f} of "
            f"{result['gflop_per_image']:.2f} GFLOP an image) need {at_peak:.1f} ms at 100% of the measured "
            f"{stage['peak_kernel']} peak ({peak:.0f} GOP/s on {stage['threads']} threads) and {at_peer:.1f} ms at the "
            f"{peer['gflops']:.0f} GOP/s {label(peer)} reaches; {bound}x its {fmt_ms(peer['median_ms'])} is "
            f"{fmt_ms(target)}, which leaves {target - at_peak:.1f} ms (at the peak) or {target - at_peer:.1f} ms for "
            f"the 3x3 stride-1 convs ({gflop(winograd):.2f} GFLOP direct), whose Winograd GEMMs alone are "
            f"{wino:.2f} GFLOP: {1e3 * wino / peak:.1f} ms at the peak, before any transform.")


def ray_table(result: dict[str, Any]) -> str:
    """Ray's overhead on one node (bench/ray_overhead.py --json): per stage, `run`'s pipeline against the Ray job
    on the same files (the whole job, and its steady rate), the shipping cost, with the machine and the command."""
    out = ["| stage | `pyresnet run` | through Ray, whole job (actors x threads) | Ray / run [range] | first row "
           "after | Ray, steady | steady / run [range] |", "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        for x in r["ray"]:
            (lo, hi), (slo, shi) = x["ratio_range"], x["steady_range"]
            out.append(f"| {r['version']} | {r['run_img_s']:.1f} img/s | {x['img_s']:.1f} img/s "
                       f"({x['actors']} x {x['threads']}) | {x['ratio']:.2f} [{lo:.2f}, {hi:.2f}] | "
                       f"{x['first_row_s']:.1f} s | {x['steady_img_s']:.1f} img/s | "
                       f"{x['steady_ratio']:.2f} [{slo:.2f}, {shi:.2f}] |")
    m = result.get("machine") or {}
    cpu = f"{m.get('cpu', '?')} {m.get('microarchitecture', '')}".strip()
    ship = "; ".join(f"{s['version']}: {s['bytes'] / 1e6:.0f} MB in {s['files']} files, put in {s['put_s']:.2f} s, "
                     f"written into the node's cache in {s['materialize_s']:.2f} s" for s in result.get("ship", []))
    r0 = result["results"][0]
    la = result.get("load_average")
    busy = (f"; 1-minute load average {la['before']:.1f} as it started, on a VM whose cores are shared with other "
            "work, hence the alternation and the ranges" if la else "")
    out += ["", f"Machine: {cpu} ({m.get('cpus_allowed', '?')} CPUs{busy}), Ray {result['ray_version']}; "
                f"{result['images']} images ({result['photos']} photos, {result['copies']} copies each), medians of "
                f"{result['rounds']} rounds, `run` and Ray alternated in each (the ratios are per round); `run`: its "
                f"own pipeline and defaults (batch {r0['batch']}, {r0['readers']} reader thread(s), "
                f"{r0['threads']} inference threads), the model loaded, Ray not running; Ray: a local cluster of "
                f"all the CPUs (started before each job, {result['ray_init_s']:.1f} s, not counted), timed from "
                f"building the dataset to the last row, the actors' start included; *steady*: the rows that "
                f"arrived between 25% and 90% of them, over that time; weights read from their path. Shipping them "
                f"through the object store instead: {ship}. Command: `{result['command']}`."]
    return "\n".join(out)
