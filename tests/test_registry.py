"""The registry, the csrc/ directories and the version READMEs agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyresnet import registry

CSRC = Path(__file__).resolve().parent.parent / "csrc"
FIELDS = ("Builds on:", "One change:", "Why:", "Measured:", "Touches:", "Limits:")
COMPILED = [v for v in registry.REGISTRY if v.directory]


def test_registry_matches_directories() -> None:
    dirs = sorted((d.name for d in CSRC.iterdir() if re.match(r"v\d+_", d.name)), key=lambda n: int(n[1:n.index("_")]))
    assert dirs == [v.directory for v in COMPILED]
    assert [v.number for v in COMPILED] == list(range(1, len(COMPILED) + 1))


@pytest.mark.parametrize("v", COMPILED, ids=lambda v: v.key)
def test_version_readme_fields(v: registry.Version) -> None:
    text = (CSRC / v.directory / "README.md").read_text()
    for field in FIELDS:
        assert re.search(rf"^{re.escape(field)}\s+\S", text, re.M), f"{v.directory}/README.md lacks '{field}'"
    builds_on = re.search(r"^Builds on:\s+(.*)$", text, re.M).group(1)
    prev = [p for p in COMPILED if p.number == v.number - 1]
    if prev:
        assert prev[0].directory in builds_on, f"{v.directory} should build on {prev[0].directory}"


@pytest.mark.parametrize("v", COMPILED, ids=lambda v: v.key)
def test_versions_never_include_each_other(v: registry.Version) -> None:
    for f in (CSRC / v.directory).rglob("*"):
        if f.suffix in (".cpp", ".h", ".txt"):
            assert "../" not in "".join(re.findall(r'#include\s+"([^"]+)"', f.read_text())), f
