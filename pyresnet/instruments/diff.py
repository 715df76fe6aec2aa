"""`pyresnet diff`: what one stage changed, as a diff between two version directories.

Files are paired by their path relative to the version directory (every version keeps the same file names),
so `pyresnet diff v3 v4` reads as the explanation of stage four. The sources come from csrc/ in a source
checkout, or from the copy shipped inside the installed package (pyresnet/csrc).
"""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import registry
from ..errors import UserError
from ..weights import source_root

TEXT_SUFFIXES = {".cpp", ".h", ".hpp", ".c", ".py", ".txt", ".md", ".cmake", ".in"}


def csrc() -> Path:
    src = source_root()
    if src is not None:
        return src / "csrc"
    shipped = Path(str(resources.files("pyresnet") / "csrc"))
    if shipped.is_dir():
        return shipped
    raise UserError("the version sources are not installed with this package (no pyresnet/csrc)")


def version_dir(name: str) -> Path:
    v = registry.get(name)
    if v.directory is None:
        raise UserError(f"version '{v.key}' is the numpy reference (pyresnet/reference/numpy_ref.py); it has no csrc directory")
    d = csrc() / v.directory
    if not d.is_dir():
        raise UserError(f"no sources for {v.directory} under {d.parent}")
    return d


def _files(d: Path) -> dict[str, Path]:
    return {str(p.relative_to(d)): p for p in sorted(d.rglob("*"))
            if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name == "CMakeLists.txt")}


def _lines(p: Path | None) -> list[str]:
    return p.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True) if p else []


def _pairs(a: str, b: str) -> tuple[Path, Path, list[tuple[str, Path | None, Path | None]]]:
    da, db = version_dir(a), version_dir(b)
    fa, fb = _files(da), _files(db)
    return da, db, [(rel, fa.get(rel), fb.get(rel)) for rel in sorted(set(fa) | set(fb))]


def unified(a: str, b: str, context: int = 3) -> str:
    """The unified diff of every file that differs, like `diff -ru csrc/<a> csrc/<b>`."""
    da, db, pairs = _pairs(a, b)
    out = []
    for rel, pa, pb in pairs:
        la, lb = _lines(pa), _lines(pb)
        if la != lb:
            out += difflib.unified_diff(la, lb, f"a/{da.name}/{rel}" if pa else "/dev/null",
                                        f"b/{db.name}/{rel}" if pb else "/dev/null", n=context)
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
    return "".join(out)


@dataclass
class FileStat:
    path: str
    added: int
    removed: int


def stat(a: str, b: str) -> list[FileStat]:
    """Lines added and removed per changed file."""
    _, _, pairs = _pairs(a, b)
    out = []
    for rel, pa, pb in pairs:
        added = removed = 0
        for line in difflib.unified_diff(_lines(pa), _lines(pb), n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        if added or removed:
            out.append(FileStat(rel, added, removed))
    return out


def format_stat(stats: list[FileStat]) -> str:
    if not stats:
        return "no differences"
    width = max(len(s.path) for s in stats)
    lines = [f" {s.path:<{width}} | +{s.added:<5} -{s.removed}" for s in stats]
    lines.append(f" {len(stats)} files changed, {sum(s.added for s in stats)} insertions(+), "
                 f"{sum(s.removed for s in stats)} deletions(-)")
    return "\n".join(lines)


def size(a: str, b: str) -> tuple[int, int, int]:
    """(files, lines added, lines removed) from stage a to stage b, README.md aside: the size of the step."""
    st = [s for s in stat(a, b) if s.path != "README.md"]
    return len(st), sum(s.added for s in st), sum(s.removed for s in st)


def size_line(v: registry.Version) -> str:
    """The Size: line of stage v's README: what the step from the stage it builds on changes, README.md aside."""
    base = v.builds_on
    if base is None:
        return "Size:        the first stage (`pyresnet diff` starts from it)"
    files, added, removed = size(base.key, v.key)
    return (f"Size:        {added + removed} changed lines ({added} added, {removed} removed) in {files} files outside "
            f"README.md (`pyresnet diff {base.key} {v.key} --stat`)")


def chain() -> str:
    """A markdown table of every stage against the one it builds on (v1 -> v2 -> ...): files changed, lines added
    and removed (README.md aside), and the file that changed most."""
    compiled = [v for v in registry.REGISTRY if v.directory and (csrc() / v.directory).is_dir()]
    rows = ["| step | one change | files | + | - | most changed |", "|---|---|---|---|---|---|"]
    for cur in compiled:
        prev = cur.builds_on
        if prev is None:
            continue
        st = [s for s in stat(prev.key, cur.key) if s.path != "README.md"]
        top = max(st, key=lambda s: s.added + s.removed).path if st else "-"
        rows.append(f"| {prev.key} -> {cur.key} | {cur.summary} | {len(st)} | {sum(s.added for s in st)} | "
                    f"{sum(s.removed for s in st)} | {top} |")
    return "\n".join(rows)


def html_page(a: str, b: str) -> str:
    """A side-by-side diff of every changed file, one self-contained page."""
    da, db, pairs = _pairs(a, b)
    hd = difflib.HtmlDiff(tabsize=4, wrapcolumn=100)
    parts = []
    for rel, pa, pb in pairs:
        la, lb = _lines(pa), _lines(pb)
        if la != lb:
            parts.append(f"<h2>{html.escape(rel)}</h2>")
            parts.append(hd.make_table(la, lb, f"{da.name}/{rel}", f"{db.name}/{rel}", context=True, numlines=4))
    body = "\n".join(parts) or "<p>no differences</p>"
    style = ("body{font-family:sans-serif} table.diff{font-family:monospace;font-size:12px;border:1px solid #ccc}"
             ".diff_add{background:#cfc}.diff_chg{background:#ffa}.diff_sub{background:#fcc}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{da.name} -> {db.name}</title>"
            f"<style>{style}</style></head><body><h1>{da.name} &rarr; {db.name}</h1>{body}</body></html>\n")
