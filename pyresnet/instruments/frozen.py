"""Frozen files: a file that is one stage's idea and is copied unchanged into every stage built on it.

A stage declares the files it is the origin of in the registry (registry.FROZEN: a path in the stage directory -> the stages it comes from):
the thread pool of the stage that introduced threads, the weight reader of the stage that preloads, an op that no
later stage changes. Every later stage on its `builds_on` chain that has the file holds a byte-identical copy, so
that `pyresnet diff` of the stage that introduced it still shows it whole, and a fix is one edit in the origin and
one command, `pyresnet frozen --sync`, which copies it forward. A stage that changes such a file on purpose declares
it too, and becomes the origin for the stages after it.

check() lists every way the stage directories break that rule, and is a test (tests/test_sources.py):
- a copy that differs from its origin (a fix made in one copy only, or an origin fixed and not synced);
- a file identical to the same file of the stage it builds on, with no origin declared for it (an unguarded copy);
- a declaration of a file the stage does not have, or of a file identical to the origin before it (nothing new).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import registry
from ..errors import UserError
from ..safeio import write_file
from ..weights import source_root
from .diff import csrc


@dataclass(frozen=True)
class Copy:
    """One frozen copy: `path` in stage `stage` must equal the same path in stage `origin`."""

    path: str
    origin: str  # stage key
    stage: str
    equal: bool


def _stages() -> list[registry.Version]:
    """The compiled stages whose directory is present, in story order."""
    root = csrc()
    return [v for v in registry.REGISTRY if v.directory and (root / v.directory).is_dir()]


def _file(v: registry.Version, path: str) -> Path:
    assert v.directory is not None
    return csrc() / v.directory / path


def _files(v: registry.Version) -> list[str]:
    """The files of a stage directory that count (everything but its README.md and Python caches)."""
    d = csrc() / (v.directory or "")
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")
                  if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts)


def origin(v: registry.Version | None, path: str) -> registry.Version | None:
    """The nearest stage at or before `v` on its builds_on chain that declares `path` frozen."""
    while v is not None:
        if path in v.frozen:
            return v
        v = v.builds_on
    return None


def _same(a: Path, b: Path) -> bool:
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def copies() -> list[Copy]:
    """Every frozen copy in the stage directories, with whether it equals its origin."""
    out = []
    for v in _stages():
        for path in _files(v):
            if path in v.frozen:
                continue
            o = origin(v.builds_on, path)
            if o is not None:
                out.append(Copy(path, o.key, v.key, _same(_file(o, path), _file(v, path))))
    return out


def check() -> list[str]:
    """One sentence per problem (empty when the stages keep the rule)."""
    problems = []
    for c in copies():
        if not c.equal:
            o, v = registry.get(c.origin), registry.get(c.stage)
            problems.append(f"{v.directory}/{c.path} differs from its frozen origin {o.directory}/{c.path}: fix the "
                            f"origin and run `pyresnet frozen --sync`, or add {v.key} to its FROZEN entry if "
                            f"{v.key} changes it on purpose")
    for v in _stages():
        files = set(_files(v))
        for path in sorted(v.frozen):
            if path not in files:
                problems.append(f"{v.key} declares {path} frozen but {v.directory} has no such file")
                continue
            before = origin(v.builds_on, path)
            if before is not None and _same(_file(before, path), _file(v, path)):
                problems.append(f"{v.key} declares {path} frozen but it is {before.key}'s copy: drop the declaration")
        base = v.builds_on
        if base is None or base.directory is None:
            continue
        for path in sorted(files - set(v.frozen)):
            if origin(base, path) is None and _same(_file(base, path), _file(v, path)):
                problems.append(f"{v.directory}/{path} is a copy of {base.directory}'s: declare it frozen in the stage "
                                f"it comes from (registry.FROZEN)")
    return problems


def sync() -> list[Path]:
    """Copy every frozen origin over its copies that differ; returns the files written."""
    if source_root() is None:
        raise UserError("frozen --sync writes into csrc/ of a source checkout; this installation has none")
    written = []
    for c in copies():
        if not c.equal:
            src, dst = _file(registry.get(c.origin), c.path), _file(registry.get(c.stage), c.path)
            written.append(write_file(dst, src.read_bytes(), UserError, "frozen copy"))
    return written
