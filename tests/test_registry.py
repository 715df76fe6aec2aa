"""The registry, the csrc/ directories and the version READMEs agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyresnet import registry

CSRC = Path(__file__).resolve().parent.parent / "csrc"
FIELDS = ("Builds on:", "One change:", "Why:", "Measured:", "Touches:", "Size:", "Limits:")
COMPILED = [v for v in registry.REGISTRY if v.directory]


def test_registry_matches_directories() -> None:
    dirs = sorted((d.name for d in CSRC.iterdir() if re.match(r"v\d+_", d.name)), key=lambda n: int(n[1:n.index("_")]))
    assert dirs == [v.directory for v in COMPILED]
    assert [v.number for v in COMPILED] == list(range(1, len(COMPILED) + 1))  # story order, no gaps


@pytest.mark.parametrize("v", COMPILED, ids=lambda v: v.key)
def test_version_readme_fields(v: registry.Version) -> None:
    text = (CSRC / v.directory / "README.md").read_text()
    for field in FIELDS:
        assert re.search(rf"^{re.escape(field)}\s+\S", text, re.M), f"{v.directory}/README.md lacks '{field}'"
    builds_on = re.search(r"^Builds on:\s+(.*)$", text, re.M).group(1)
    prev = v.builds_on
    if prev is not None:
        assert prev.directory in builds_on, f"{v.directory} should build on {prev.directory}"


@pytest.mark.parametrize("v", COMPILED, ids=lambda v: v.key)
def test_versions_never_include_each_other(v: registry.Version) -> None:
    for f in (CSRC / v.directory).rglob("*"):
        if f.suffix in (".cpp", ".h", ".txt"):
            assert "../" not in "".join(re.findall(r'#include\s+"([^"]+)"', f.read_text())), f


def test_a_shadowing_source_checkout_is_named(tmp_path: Path) -> None:
    """Python started in a checkout imports ./pyresnet, which has no built modules, before the installed copy:
    versions() would quietly be ['py']. The registry says so in one sentence, with the fix."""
    (tmp_path / "pyresnet").mkdir()
    (tmp_path / "csrc").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    why = registry.shadowed_source(tmp_path / "pyresnet", ["py"])
    assert why and str(tmp_path) in why and "pip install -e ." in why and "another directory" in why
    assert registry.shadowed_source(tmp_path / "pyresnet", ["py", "v1"]) is None  # built: nothing to say
    assert registry.shadowed_source(tmp_path / "elsewhere" / "pyresnet", ["py"]) is None  # not a checkout


def test_the_default_version_is_the_newest_fp32_stage() -> None:
    """`run`, `eval` and `profile` without --version use the newest fp32 stage that is not a stepping stone: a
    reduced-precision one answers a little differently from fp32 and int8 needs a calibration, and a stepping stone
    (slower than the stage before it, kept for the stages built on it) is no one's best choice, so those are asked
    for by name."""
    import pyresnet

    built = pyresnet.versions()
    default = registry.newest()
    assert registry.get(default).precision == "fp32" and not registry.get(default).stepping_stone
    assert all(registry.get(v).precision != "fp32" or registry.get(v).stepping_stone
               for v in built[built.index(default) + 1:])


@pytest.mark.parametrize("v", [v for v in COMPILED if v.stepping_stone], ids=lambda v: v.key)
def test_a_stepping_stone_is_built_on(v: registry.Version) -> None:
    """A stage kept for what it enables has a later stage that builds on it."""
    assert any(w.builds_on == v for w in COMPILED), f"{v.directory} is a stepping stone that no stage builds on"
