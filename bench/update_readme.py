"""Regenerate the version table in README.md from a `pyresnet bench --json` result. Numbers are never typed by hand.

    python bench/update_readme.py bench/results/bench.json [README.md]

Rewrites the lines between <!-- versions-table:begin --> and <!-- versions-table:end -->: one row per version in
story order (version | what changed | threads | latency here | speedup vs v1 / vs previous | GFLOP/s, % of peak | the
original's latency), the peers below them, then the machine, threads and command.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pyresnet import registry
from pyresnet.instruments import bench

BEGIN, END = "<!-- versions-table:begin -->", "<!-- versions-table:end -->"


def fmt_ms(ms: float) -> str:
    return f"{ms / 1e3:.1f} s" if ms >= 10_000 else f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def table(result: dict) -> str:
    rows = bench.derived(result)
    out = ["| version | what changed | threads | latency here | speedup vs v1 / vs prev | GFLOP/s (% of peak) "
           "| the original |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "version":
            v = registry.get(r["name"])
            name = f"`{v.key}`" if v.directory is None else f"`{v.key}` [{v.directory}](csrc/{v.directory}/README.md)"
            what = v.summary
            orig = f"{v.original_ms:.0f} ms" if v.original_ms else "-"
        else:
            name, what, orig = f"*{r['name']}*", "peer: the same network and weights", "-"
        speed = "-" if r["vs_v1"] is None else f"{r['vs_v1']:.1f}x"
        if r["vs_prev"] is not None:
            speed += f" / {r['vs_prev']:.2f}x"
        capped = " (capped runs)" if r["capped"] else ""
        out.append(f"| {name} | {what} | {r['threads']} | {fmt_ms(r['median_ms'])}{capped} | {speed} | "
                   f"{r['gflops']:.1f} ({r['pct_peak']:.0f}%) | {orig} |")
    m = result["machine"]
    peak = result["peak"]
    out += ["", f"Machine: {m['cpu']}, {m['cpus_allowed']} CPUs, {m['os']}; --threads {result['threads']} asked of every "
                f"row (the threads column is what each row used); fp32 FMA peak {peak['gflops']:.0f} GFLOP/s ({peak['best_isa']}, measured by "
                f"`pyresnet bench --peak`); {result['gflop_per_image']:.2f} GFLOP per image; warm median of one "
                f"`logits()` call, batch 1, random weights. Command: `{result.get('command', 'pyresnet bench --all')}`."]
    return "\n".join(out)


def main() -> int:
    src = Path(sys.argv[1])
    readme = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "README.md"
    result = json.loads(src.read_text())
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"{readme} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table(result)}\n{END}", text))
    print(f"updated {readme} from {src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
