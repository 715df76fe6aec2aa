"""The rules the stage directories keep, so that `pyresnet diff vN-1 vN` stays the explanation of stage N.

- Frozen files: a file that is one stage's idea is copied unchanged into the stages built on it, and every copy
  equals its origin (pyresnet/instruments/frozen.py; `pyresnet frozen --sync` copies a fix forward).
- What is no stage's idea lives once, in csrc/common: no file is byte-identical in every stage directory.
- A source file says what it is now: it names no stage but its own, the one it builds on and, in a frozen copy, the
  stage the file comes from (the history lives in the stage's README.md and its diff), and it carries no measured
  figure (milliseconds, img/s, GFLOP/s, percentages, speedups such as 1.08x): those live in bench/results and the
  READMEs generated from them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyresnet import registry
from pyresnet.instruments import frozen
from pyresnet.instruments.diff import csrc

STAGES = [v for v in registry.REGISTRY if v.directory and (csrc() / v.directory).is_dir()]
SOURCE_SUFFIXES = {".cpp", ".h", ".py", ".txt"}
# A stage named in a source file: its key or its directory ('v8', 'v8_gemm'), not a version number such as v1.5.
STAGE_NAME = re.compile(r"\bv(\d+)(?:_[a-z0-9]+)?\b(?!\.\d)")
# A measured figure: a time, a rate, a percentage or a ratio with decimals ('41.7 ms', '30 img/s', '12%', '1.08x').
FIGURE = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|GFLOP/s|GB/s|img/s|images per second)\b|\b\d+(?:\.\d+)?\s?%"
                    r"|\b\d+\.\d+x\b")


def sources(v: registry.Version) -> list[Path]:
    d = csrc() / v.directory  # type: ignore[operator]
    return sorted(p for p in d.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and (p.suffix in SOURCE_SUFFIXES or p.name == "CMakeLists.txt") and p.name != "README.md")


def comments(p: Path) -> list[tuple[int, str]]:
    """(line number, text) of the comment lines of a source file: // in C++, # and docstrings in Python and CMake."""
    out, in_doc = [], False
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if p.suffix == ".py":
            quotes = s.count('"""')
            if in_doc or quotes:
                out.append((i, s))
                if quotes % 2:
                    in_doc = not in_doc
                continue
        if "//" in line and p.suffix in (".cpp", ".h"):
            out.append((i, line[line.index("//"):]))
        elif s.startswith("#") and p.suffix in (".py", ".txt", "") and not s.startswith("#include"):
            out.append((i, s))
    return out


def test_frozen_copies_equal_their_origin() -> None:
    problems = frozen.check()
    assert not problems, "\n".join(problems)


def test_frozen_copies_exist() -> None:
    """The rule is not vacuous: the thread pool, the weight reader and more are frozen copies."""
    assert len(frozen.copies()) >= 20


def test_no_file_is_the_same_in_every_stage() -> None:
    files = [{str(p.relative_to(csrc() / v.directory)): p.read_bytes() for p in sources(v)}  # type: ignore[operator]
             for v in STAGES]
    common = set.intersection(*(set(f) for f in files))
    same = [name for name in common if len({f[name] for f in files}) == 1]
    assert not same, f"identical in every stage (move them to csrc/common): {same}"


@pytest.mark.parametrize("version", [v.key for v in STAGES])
def test_sources_name_only_their_own_stages(version: str) -> None:
    v = registry.get(version)
    allowed = {v.key} | ({v.builds_on.key} if v.builds_on else set())
    bad = []
    for p in sources(v):
        rel = str(p.relative_to(csrc() / v.directory))  # type: ignore[operator]
        o = frozen.origin(v, rel)
        ok = allowed | ({o.key} if o else set()) | ({o.builds_on.key} if o and o is v and o.builds_on else set())
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            for m in STAGE_NAME.finditer(line):
                if f"v{m.group(1)}" not in ok:
                    bad.append(f"{v.directory}/{rel}:{i}: names {m.group(0)}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("version", [v.key for v in STAGES])
def test_sources_carry_no_measured_figures(version: str) -> None:
    v = registry.get(version)
    bad = [f"{v.directory}/{p.relative_to(csrc() / v.directory)}:{i}: {text.strip()[:100]}"  # type: ignore[operator]
           for p in sources(v) for i, text in comments(p) if FIGURE.search(text)]
    assert not bad, "\n".join(bad)
