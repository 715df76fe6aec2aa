"""Regenerate every number the READMEs quote from the committed results JSON. Numbers are never typed by hand.

    python bench/update_readme.py            # rewrite the generated blocks and every stage's Measured: line
    python bench/update_readme.py --check    # exit 1, listing the files, if any of them is out of date (a test)

What is generated:
- in README.md, between `<!-- results-table PATH -->` and `<!-- /results-table -->`: the version table of the
  `pyresnet bench --json` result at PATH (one block per machine measured); between `<!-- story PATH -->` and
  `<!-- /story -->`: the story in one line per stage, from the same kind of file; between `<!-- rounds PATH -->` and
  `<!-- /rounds -->`: every row's median in every round of an interleaved run; between `<!-- preprocess PATH -->`
  and `<!-- /preprocess -->`: the CPU and the differences of preprocessing each photo, from bench/preprocess_cost.py
  --json; between `<!-- tail PATH -->` and `<!-- /tail -->`: every row's p99 over its median; between
  `<!-- ray PATH -->` and `<!-- /ray -->`: `run`'s pipeline against the same stage through Ray on one node, from
  bench/ray_overhead.py --json; between `<!-- goals PATH AVX2PATH -->` and `<!-- /goals -->`: each goal of
  report.GOALS against a run and the same stages' run on the AVX2 path; between `<!-- fp32-floor PATH -->` and
  `<!-- /fp32-floor -->`: what the fp32 goal asks of the FMA unit (report.fp32_floor);
- between `<!-- diff-chain -->` and `<!-- /diff-chain -->`: `pyresnet diff --chain`, the size of every step, read from
  the stage directories themselves;
- in every csrc/vN_name/README.md, the `Measured:` line: this stage against the previous one, from STAGES below
  (and, for stages with several instruction sets, the AVX2 path from STAGES_AVX2 when that file exists), and the
  `Size:` line: the lines this stage changes from the one it builds on (`pyresnet diff --stat`, README.md aside).
A results file carries its machine, each row's directory and summary at the time of the run, and the command.
What the blocks and lines say is rendered by pyresnet/instruments/report.py, as `pyresnet bench` renders its table;
this script only knows which results file feeds which block, and writes (or, with --check, compares) the files.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from pyresnet import registry
from pyresnet.errors import UserError
from pyresnet.safeio import write_file
from pyresnet.instruments import diff, report

REPO = Path(__file__).resolve().parent.parent
# The results every stage README quotes: one `pyresnet bench --all` run on the machine of this session, and the
# same run with PYRESNET_ISA=avx2, which shows what the AVX-512 stage buys on that CPU.
STAGES = "bench/results/amd-epyc-zen4-avx512/bench.json"
STAGES_AVX2 = "bench/results/amd-epyc-zen4-avx512/bench-isa-avx2.json"

TABLE = re.compile(r"(<!-- results-table (\S+) -->\n).*?(<!-- /results-table -->)", re.S)
STORY = re.compile(r"(<!-- story (\S+) -->\n).*?(<!-- /story -->)", re.S)
ROUNDS = re.compile(r"(<!-- rounds (\S+) -->\n).*?(<!-- /rounds -->)", re.S)
TAIL = re.compile(r"(<!-- tail (\S+) -->\n).*?(<!-- /tail -->)", re.S)
PREPROCESS = re.compile(r"(<!-- preprocess (\S+) -->\n).*?(<!-- /preprocess -->)", re.S)
RAY = re.compile(r"(<!-- ray (\S+) -->\n).*?(<!-- /ray -->)", re.S)
CHAIN = re.compile(r"(<!-- diff-chain -->\n).*?(<!-- /diff-chain -->)", re.S)
GOALS = re.compile(r"(<!-- goals (\S+) (\S+) -->\n).*?(<!-- /goals -->)", re.S)
FLOOR = re.compile(r"(<!-- fp32-floor (\S+) -->\n).*?(<!-- /fp32-floor -->)", re.S)
MEASURED = re.compile(r"^Measured:[ \t]+.*$", re.M)
SIZE = re.compile(r"^Size:[ \t]+.*$", re.M)
TOUCHES = re.compile(r"^Touches:[ \t]+.*$", re.M)


def load(path: str) -> dict[str, Any]:
    return json.loads((REPO / path).read_text())


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
    text = TABLE.sub(lambda m: f"{m.group(1)}{report.readme_table(load(m.group(2)))}\n{m.group(3)}", text)
    text = STORY.sub(lambda m: f"{m.group(1)}{report.story(load(m.group(2)))}\n{m.group(3)}", text)
    text = ROUNDS.sub(lambda m: f"{m.group(1)}{report.rounds_table(load(m.group(2)))}\n{m.group(3)}", text)
    text = TAIL.sub(lambda m: f"{m.group(1)}{report.tail_line(load(m.group(2)))}\n{m.group(3)}", text)
    text = PREPROCESS.sub(lambda m: f"{m.group(1)}{report.preprocess_table(load(m.group(2)))}\n{m.group(3)}", text)
    text = RAY.sub(lambda m: f"{m.group(1)}{report.ray_table(load(m.group(2)))}\n{m.group(3)}", text)
    text = CHAIN.sub(lambda m: f"{m.group(1)}{diff.chain()}\n{m.group(2)}", text)
    text = GOALS.sub(lambda m: f"{m.group(1)}{report.goals_table(load(m.group(2)), load(m.group(3)))}\n{m.group(4)}",
                     text)
    text = FLOOR.sub(lambda m: f"{m.group(1)}{report.fp32_floor(load(m.group(2)))}\n{m.group(3)}", text)
    out[readme] = text
    result = load(STAGES) if (REPO / STAGES).is_file() else None
    avx2 = (load(STAGES_AVX2), STAGES_AVX2) if (REPO / STAGES_AVX2).is_file() else None
    for v in registry.REGISTRY:
        if v.directory is None:
            continue
        path = REPO / "csrc" / v.directory / "README.md"
        if not path.is_file():
            continue
        t = with_size(path.read_text(), diff.size_line(v))
        if result is not None:
            line = report.measured_line(v, result, STAGES, avx2)
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
                write_file(path, text.encode(), UserError, "README")
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
