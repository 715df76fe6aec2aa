"""What a `pyresnet bench` result says, rendered: the console table and the plot (`bench`), and the README's version
tables, its story lines and every stage README's `Measured:` line (bench/update_readme.py).

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
from . import peers

P99_SAMPLES = 100  # fewer samples than this and p99 is not reported: it would be the maximum


def throughput_keys(result: dict[str, Any]) -> list[str]:
    """The throughput settings measured in a result, in order: 'batch 8', 'batch 32', 'streams 2'."""
    keys = [f"batch {b}" for b in result.get("batches", []) if b > 1]
    if result.get("streams", 1) > 1:
        keys.append(f"streams {result['streams']}")
    return keys


def _builds_on(name: str) -> str | None:
    """The key of the stage `name` builds on, or None for names the registry does not know (old results files)."""
    try:
        b = registry.get(name).builds_on
    except UnknownVersionError:  # a results file may name a stage this checkout no longer has
        return None
    return b.key if b is not None else None


def derived(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row: batch-1 img/s, best sustained img/s and where, GFLOP/s, % of peak, speedups over v1 and previous."""
    rows = result["rows"]
    by_name = {r["name"]: r for r in rows}
    v1 = by_name.get("v1")
    prev = None
    out = []
    for r in rows:
        med = r["median_ms"]
        d = {"p99_ms": None, "throughput": {}, "agreement": {}, "peer": {}, **r, "img_s": 1e3 / med,
             "gflops": result["gflop_per_image"] / (med / 1e3)}
        d["pct_peak"] = 100 * d["gflops"] / result["peak"]["gflops"]
        d["vs_v1"] = v1["median_ms"] / med if v1 else None
        best = max([("batch 1", d["img_s"])] + list(d["throughput"].items()), key=lambda kv: kv[1])
        d["best_img_s"], d["best_setting"] = best[1], best[0]
        d["vs_prev"] = None
        if r["kind"] == "version" and r["name"] != "py":
            base = _builds_on(r["name"])
            if base is not None and base in by_name:
                prev = by_name[base]  # the stage this one builds on, when it was measured too
            d["vs_prev"] = prev["median_ms"] / med if prev else None
            d["prev_name"] = prev["name"] if prev else None
            prev = r
        out.append(d)
    return out


def label(d: dict[str, Any]) -> str:
    """A row's name as the tables and the plot show it: a version's key, or a peer's label ('pytorch (jit)')."""
    return d["name"] if d["kind"] == "version" else peers.label(d["name"], d.get("peer", {}))


def how_measured(result: dict[str, Any]) -> str:
    """'; rows measured interleaved, 10 rounds' for a result that records it; '' for older ones."""
    inter = result.get("interleaved")
    return f"; rows measured interleaved, {inter['rounds']} rounds" if inter else ""


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
        f"thread(s); fp32 FMA peak {result['peak']['gflops']:.0f} GFLOP/s ({result['peak']['best_isa']}, measured); "
        f"{result['gflop_per_image']:.2f} GFLOP per image{how_measured(result)}",
        "",
        "| version | threads | p50 ms | p90 ms | p99 ms | min ms | img/s batch 1 | "
        + "".join(f"img/s {k} | " for k in keys) + "GFLOP/s | % peak | vs v1 | vs prev | runs | check |",
        "|---|---|---|---|---|---|---|" + "---|" * len(keys) + "---|---|---|---|---|---|",
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
        lines.append(f"| {name} | {d['threads']} | {d['median_ms']:.1f} | {d['p90_ms']:.1f} | "
                     f"{fmt(d['p99_ms'], '{:.1f}')} | {d['min_ms']:.1f} | {d['img_s']:.1f} | {tp}{d['gflops']:.1f} | "
                     f"{d['pct_peak']:.1f} | {fmt(d['vs_v1'])} | {fmt(d['vs_prev'])} | {runs} | {ok} |")
    notes = []
    if any(d["capped"] for d in rows):
        notes.append("capped: versions marked slow run a fixed few times instead of the time budget")
    if keys:
        notes.append("'-' under a batch: the row has no native batch (its batch would be its images one by one)")
    notes.append(f"p99 only from {P99_SAMPLES} samples up")
    e2e = result.get("end_to_end")
    if e2e:
        notes.append(f"end to end (`run` over {e2e['images']} photos x {e2e['rounds']}, decode included, "
                     f"{e2e['version']}, batch {e2e['batch']}, {e2e['readers']} reader): {e2e['img_s']:.1f} img/s, "
                     f"{e2e['ratio']:.0%} of its inference alone ({e2e['inference_img_s']:.1f} img/s)")
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
    ax1.bar(names, [r["median_ms"] for r in rows], color=colors)
    for n, r in zip(names, rows):
        ax1.annotate(f"{r['median_ms']:.0f}", (n, r["median_ms"]), ha="center", va="bottom", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_ylabel("latency per image, batch 1, ms (log scale)")
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
    """The README's version table of a result, with the machine, end-to-end and command lines under it."""
    rows = derived(result)
    keys = throughput_keys(result)
    throughput = bool(keys)
    out = ["| version | what changed | threads | latency here (p50" + (", p99" if throughput else "") + "; min) | "
           + ("best img/s (how) | " if throughput else "") + "speedup vs v1 / vs prev | GFLOP/s (% of peak) "
           "| the original |",
           "|---|---|---|---|" + ("---|" if throughput else "") + "---|---|---|"]
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
            speed += f" / {r['vs_prev']:.2f}x"
        capped = " (capped runs)" if r["capped"] else ""
        lat = fmt_ms(r["median_ms"]) + capped
        if throughput:
            lat += f", {fmt_ms(r['p99_ms'])}" if r.get("p99_ms") else ", -"
        lat += f"; {fmt_ms(min(r['samples_ms']))}"
        best = f"{r['best_img_s']:.1f} ({r['best_setting']}) | " if throughput else ""
        out.append(f"| {name} | {what} | {r['threads']} | {lat} | {best}{speed} | "
                   f"{r['gflops']:.1f} ({r['pct_peak']:.0f}%) | {orig} |")
    m, peak = result["machine"], result["peak"]
    env = "".join(f" {k}={v}" for k, v in result.get("env", {}).items())
    out += ["", f"Machine: {machine_line(result)}, {m['os']}; --threads {result['threads']} asked of every row (the "
                f"threads column is what each row used); fp32 FMA peak {peak['gflops']:.0f} GFLOP/s "
                f"({peak['best_isa']}, measured by `pyresnet bench --peak`); {result['gflop_per_image']:.2f} GFLOP per "
                f"image; latency: one `logits()` call, batch 1, random weights{how_measured(result)}"
                + ("; throughput: the best of batch 1, " + ", ".join(keys) + " (sustained images per second)"
                   if throughput else "") + "."]
    e2e = result.get("end_to_end")
    if e2e:
        out.append(f"End to end: `pyresnet run` over {e2e['images']} photos ({e2e['rounds']} rounds, decoding "
                   f"included, {e2e['version']}, batch {e2e['batch']}, {e2e['readers']} reader thread): "
                   f"{e2e['img_s']:.1f} img/s, {e2e['ratio']:.0%} of the same model's inference alone.")
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


def story(result: dict[str, Any]) -> str:
    """One line per stage: what it changed and what that bought, from the results file."""
    lines = []
    by_name = {r["name"]: r for r in result["rows"]}
    for r in derived(result):
        if r["kind"] != "version" or r["name"] == "py":
            continue
        gain = ""
        if r["vs_prev"] is not None:
            base = r["prev_name"]
            gain = (f", {r['vs_prev']:.2f}x {base} by the median, "
                    f"{min(by_name[base]['samples_ms']) / min(r['samples_ms']):.2f}x by the fastest call")
        lines.append(f"- **{r['name']}** ({summary(result, r)}): {fmt_ms(r['median_ms'])} (fastest "
                     f"{fmt_ms(min(r['samples_ms']))}) on {r['threads']} thread(s){gain}, {r['pct_peak']:.0f}% of the "
                     f"FMA peak.")
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
    head = f"warm median {fmt_ms(r['median_ms'])}/img"
    if prev is not None and prev.key in rows:
        p = rows[prev.key]
        fastest = min(p["samples_ms"]) / min(r["samples_ms"])
        head = (f"warm median {fmt_ms(p['median_ms'])} ({p['name']}, {p['threads']} thread(s)) -> "
                f"{fmt_ms(r['median_ms'])}/img ({r['vs_prev']:.2f}x; {r['vs_v1']:.0f}x v1); fastest call "
                f"{fmt_ms(min(p['samples_ms']))} -> {fmt_ms(min(r['samples_ms']))} ({fastest:.2f}x)")
    elif r["capped"]:
        head += f" ({len(r['samples_ms'])} capped runs)"
    isa = f", {r['isa']} path" if r.get("isa") else ""
    extra = ""
    if avx2 and r.get("isa") and r["isa"] != "avx2":
        a = {x["name"]: x for x in derived(avx2[0])}.get(v.key)
        if a and a.get("isa") == "avx2":
            extra = f"; the avx2 path on the same CPU: {fmt_ms(a['median_ms'])} ({avx2[1]})"
    peer_rows = ", ".join(f"{x['name']} {fmt_ms(x['median_ms'])}" for x in rows.values() if x["kind"] == "peer")
    peer_rows = f"; peers in the same run: {peer_rows}" if peer_rows else ""
    return (f"Measured:    {head}, {r['threads']} thread(s){isa}, {r['pct_peak']:.0f}% of the fp32 FMA peak{extra}"
            f"{peer_rows}; {machine_line(result)}, {compiler} {flags}; `{result.get('command')}` ({path})")
