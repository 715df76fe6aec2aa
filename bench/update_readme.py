"""Regenerate every number the READMEs quote from the committed results JSON. Numbers are never typed by hand.

    python bench/update_readme.py            # rewrite the generated blocks and every stage's Measured: line
    python bench/update_readme.py --check    # exit 1, listing the files, if any of them is out of date (a test)

What is generated:
- in README.md, between `<!-- results-table PATH -->` and `<!-- /results-table -->`: the version table of the
  `pyresnet bench --json` result at PATH (one block per machine measured); between `<!-- story PATH -->` and
  `<!-- /story -->`: the story in one line per stage, from the same kind of file;
- between `<!-- diff-chain -->` and `<!-- /diff-chain -->`: `pyresnet diff --chain`, the size of every step, read from
  the stage directories themselves;
- in every csrc/vN_name/README.md, the `Measured:` line: this stage against the previous one, from STAGES below
  (and, for stages with several instruction sets, the AVX2 path from STAGES_AVX2 when that file exists), and the
  `Size:` line: the lines this stage changes from the one it builds on (`pyresnet diff --stat`, README.md aside).
A results file carries its machine, each row's directory and summary at the time of the run, and the command.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from pyresnet import registry
from pyresnet.instruments import bench, diff

REPO = Path(__file__).resolve().parent.parent
# The results every stage README quotes: one `pyresnet bench --all` run on the machine of this session, and the
# same run with PYRESNET_ISA=avx2, which shows what the AVX-512 stage buys on that CPU.
STAGES = "bench/results/amd-epyc-zen4-avx512/bench.json"
STAGES_AVX2 = "bench/results/amd-epyc-zen4-avx512/bench-isa-avx2.json"

TABLE = re.compile(r"(<!-- results-table (\S+) -->\n).*?(<!-- /results-table -->)", re.S)
STORY = re.compile(r"(<!-- story (\S+) -->\n).*?(<!-- /story -->)", re.S)
CHAIN = re.compile(r"(<!-- diff-chain -->\n).*?(<!-- /diff-chain -->)", re.S)
MEASURED = re.compile(r"^Measured:[ \t]+.*$", re.M)
SIZE = re.compile(r"^Size:[ \t]+.*$", re.M)
TOUCHES = re.compile(r"^Touches:[ \t]+.*$", re.M)


def fmt_ms(ms: float) -> str:
    return f"{ms / 1e3:.1f} s" if ms >= 10_000 else f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def load(path: str) -> dict[str, Any]:
    return json.loads((REPO / path).read_text())


def directory(result: dict[str, Any], row: dict[str, Any]) -> str | None:
    """The stage directory a row measured (older files keep it in machine.versions only)."""
    return row.get("directory") or result["machine"].get("versions", {}).get(row["name"], {}).get("directory")


def summary(result: dict[str, Any], row: dict[str, Any]) -> str:
    if row.get("summary"):
        return row["summary"]
    d = directory(result, row)
    for v in registry.REGISTRY:
        if v.key == row["name"] and v.directory == d:
            return v.summary
    return f"`{d}`, a stage of an earlier layout (its README: `git log -- csrc/{d}`)"


def machine_line(result: dict[str, Any]) -> str:
    m = result["machine"]
    uarch = f", {m['microarchitecture']}" if m.get("microarchitecture") else ""
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni") if m["simd"].get(f))
    return f"{m['cpu']}{uarch} ({m['cpus_allowed']} CPUs; {isa})"


def table(result: dict[str, Any]) -> str:
    rows = bench.derived(result)
    throughput = bool(bench.throughput_keys(result))
    out = ["| version | what changed | threads | latency here (p50" + (", p99" if throughput else "") + "; min) | "
           + ("best img/s (how) | " if throughput else "") + "speedup vs v1 / vs prev | GFLOP/s (% of peak) "
           "| the original |",
           "|---|---|---|---|" + ("---|" if throughput else "") + "---|---|---|"]
    for r in rows:
        if r["kind"] == "version":
            d = directory(result, r)
            v = next((v for v in registry.REGISTRY if v.key == r["name"] and v.directory == d), None)
            name = f"`{r['name']}`" if d is None else (
                f"`{r['name']}` [{d}](csrc/{d}/README.md)" if v else f"`{r['name']}` {d}")
            what = summary(result, r) + (f" ({r['isa']} path)" if r.get("isa") else "")
            orig = f"{v.original_ms:.0f} ms" if v and v.original_ms else "-"
        else:
            name, orig = f"*{bench.peer_label(r)}*", "-"
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
                f"image; latency: one `logits()` call, batch 1, random weights"
                + (f"; throughput: the best of batch 1, " + ", ".join(bench.throughput_keys(result))
                   + " (sustained images per second)" if throughput else "") + "."]
    e2e = result.get("end_to_end")
    if e2e:
        out.append(f"End to end: `pyresnet run` over {e2e['images']} photos ({e2e['rounds']} rounds, decoding "
                   f"included, {e2e['version']}, batch {e2e['batch']}, {e2e['readers']} reader thread): "
                   f"{e2e['img_s']:.1f} img/s, {e2e['ratio']:.0%} of the same model's inference alone.")
    out.append(f"Command:{env} `{result.get('command', 'pyresnet bench --all')}`.")
    return "\n".join(out)


def story(result: dict[str, Any]) -> str:
    """One line per stage: what it changed and what that bought, from the results file."""
    lines = []
    by_name = {r["name"]: r for r in result["rows"]}
    for r in bench.derived(result):
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


def measured(v: registry.Version, result: dict[str, Any], path: str, avx2: tuple[dict[str, Any], str] | None) -> str:
    """The Measured: line of stage v's README."""
    rows = {r["name"]: r for r in bench.derived(result)}
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
        a = {x["name"]: x for x in bench.derived(avx2[0])}.get(v.key)
        if a and a.get("isa") == "avx2":
            extra = f"; the avx2 path on the same CPU: {fmt_ms(a['median_ms'])} ({avx2[1]})"
    peers = ", ".join(f"{x['name']} {fmt_ms(x['median_ms'])}" for x in rows.values() if x["kind"] == "peer")
    peers = f"; peers in the same run: {peers}" if peers else ""
    return (f"Measured:    {head}, {r['threads']} thread(s){isa}, {r['pct_peak']:.0f}% of the fp32 FMA peak{extra}"
            f"{peers}; {machine_line(result)}, {compiler} {flags}; `{result.get('command')}` ({path})")


def size_line(v: registry.Version) -> str:
    """The Size: line of stage v's README: what the step from the stage it builds on changes, README.md aside."""
    base = v.builds_on
    if base is None:
        return "Size:        the first stage (`pyresnet diff` starts from it)"
    files, added, removed = diff.size(base.key, v.key)
    return (f"Size:        {added + removed} changed lines ({added} added, {removed} removed) in {files} files outside "
            f"README.md (`pyresnet diff {base.key} {v.key} --stat`)")


def with_size(text: str, line: str) -> str:
    """text with its Size: line set, placed after the Touches: field when it has none yet."""
    if SIZE.search(text):
        return SIZE.sub(lambda _: line, text, count=1)
    return TOUCHES.sub(lambda m: f"{m.group(0)}\n{line}", text, count=1)


def regenerate() -> dict[Path, str]:
    """Every file this script owns, as it should read now: {path: new text}."""
    out: dict[Path, str] = {}
    readme = REPO / "README.md"
    text = readme.read_text()
    text = TABLE.sub(lambda m: f"{m.group(1)}{table(load(m.group(2)))}\n{m.group(3)}", text)
    text = STORY.sub(lambda m: f"{m.group(1)}{story(load(m.group(2)))}\n{m.group(3)}", text)
    text = CHAIN.sub(lambda m: f"{m.group(1)}{diff.chain()}\n{m.group(2)}", text)
    out[readme] = text
    result = load(STAGES) if (REPO / STAGES).is_file() else None
    avx2 = (load(STAGES_AVX2), STAGES_AVX2) if (REPO / STAGES_AVX2).is_file() else None
    for v in registry.REGISTRY:
        if v.directory is None:
            continue
        path = REPO / "csrc" / v.directory / "README.md"
        if not path.is_file():
            continue
        t = with_size(path.read_text(), size_line(v))
        if result is not None:
            line = measured(v, result, STAGES, avx2)
            t = MEASURED.sub(lambda _: line, t, count=1)
        out[path] = t
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in regenerate().items():
        if path.read_text() != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    rel = ", ".join(str(p.relative_to(REPO)) for p in stale)
    if check:
        if stale:
            print(f"out of date with bench/results: {rel}; run `python bench/update_readme.py`", file=sys.stderr)
            return 1
        return 0
    print(f"updated {rel}" if stale else "everything was up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
