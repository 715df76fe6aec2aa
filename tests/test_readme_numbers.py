"""Numbers that cannot drift: every figure the READMEs quote from a benchmark is generated from committed results.

bench/update_readme.py owns the version tables and the story in README.md and the `Measured:` line of every stage
README; here it runs in check mode, so a README edited by hand, or a results file changed without regenerating,
fails the suite. The results files it reads must exist and say which machine they came from.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from pyresnet import registry

REPO = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("update_readme", REPO / "bench" / "update_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readmes_match_the_results_files() -> None:
    gen = _generator()
    stale = [str(p.relative_to(REPO)) for p, text in gen.regenerate().items() if p.read_text() != text]
    assert not stale, f"edited by hand or not regenerated: {stale}; run `python bench/update_readme.py`"


def test_every_quoted_results_file_names_its_machine() -> None:
    text = (REPO / "README.md").read_text()
    quoted = re.findall(r"<!-- (?:results-table|story) (\S+) -->", text)
    assert quoted, "README.md quotes no results file"
    for path in quoted:
        result = json.loads((REPO / path).read_text())
        assert result["machine"]["cpu"] and result["machine"]["simd"], path
        assert all(r["samples_ms"] for r in result["rows"]), path


@pytest.mark.parametrize("v", [v for v in registry.REGISTRY if v.directory], ids=lambda v: v.key)
def test_measured_line_cites_a_results_file(v: registry.Version) -> None:
    line = re.search(r"^Measured:\s+(.*)$", (REPO / "csrc" / v.directory / "README.md").read_text(), re.M).group(1)
    cited = re.findall(r"bench/results/\S+?\.json", line)
    assert cited, f"{v.directory}: the Measured line cites no results file: {line}"
    for path in cited:
        assert (REPO / path).is_file(), f"{v.directory} cites {path}, which does not exist"
