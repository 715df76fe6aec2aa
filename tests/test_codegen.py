"""`pyresnet codegen` and the generators behind it (v5_codegen on): the build-time source is real, readable C++.

Parametrised over every version whose directory has a codegen.py, so later generating stages are covered too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from pyresnet import arch, registry
from pyresnet.instruments import codegen
from pyresnet.instruments.diff import csrc

from conftest import assert_one_line_error, run_cli

GENERATING = codegen.generating_versions()
pytestmark = pytest.mark.skipif(not GENERATING, reason="no generating version in this checkout")


def generate(version: str, out: Path) -> str:
    r = run_cli("codegen", "--version", version, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out / "generated.cpp") in r.stdout
    return (out / "generated.cpp").read_text()


def _generates_kernels(version: str) -> bool:
    """v5 to v7 emit one kernel per conv shape; from v8 on the generator emits only the forward pass."""
    return "def kernel(" in (csrc() / registry.get(version).directory / "codegen.py").read_text()  # type: ignore[operator]


@pytest.mark.parametrize("version", [v for v in GENERATING if _generates_kernels(v)])
def test_one_kernel_per_distinct_shape(version: str, tmp_path: Path) -> None:
    src = generate(version, tmp_path)
    shapes = {(c.hin, c.cin, c.cout, c.kernel, c.stride, c.pad) for c in arch.convs()}
    kernels = re.findall(r"^void (conv_\w+)\(", src, re.M)
    assert len(kernels) == len(set(kernels)) == len(shapes)
    for h, cin, cout, k, s, p in shapes:
        assert f"conv_{h}x{h}x{cin}_k{k}s{s}p{p}_{cout}" in kernels


@pytest.mark.parametrize("version", GENERATING)
def test_forward_is_straight_line(version: str, tmp_path: Path) -> None:
    src = generate(version, tmp_path)
    # every conv layer is called once, from the straight-line forward pass; stem and maxpool come first
    forward = src[src.index("void generated_"):]  # generated_forward(), or generated_head() and _tail()
    assert re.findall(r'\{  // (\S+)', forward)[:3] == ["conv1", "maxpool", "layer1.0.conv1"]
    called = re.findall(r"conv\[(\d+)\]\.weight|kern\.task\(conv\[(\d+)\]", forward)
    assert sorted(int(a or b) for a, b in called) == list(range(len(arch.convs())))
    # no addresses baked in: weights and buffers come in as arguments
    assert not re.search(r"0x[0-9a-fA-F]{6,}", src)


@pytest.mark.parametrize("version", GENERATING)
def test_generated_source_compiles_warning_free(version: str, tmp_path: Path) -> None:
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        pytest.skip("no C++ compiler")
    generate(version, tmp_path)
    vdir = csrc() / registry.get(version).directory  # type: ignore[operator]
    r = subprocess.run([gxx, "-std=c++17", "-O1", "-mavx2", "-mfma", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                        f"-I{vdir}", f"-I{vdir.parent}", f"-I{sysconfig.get_paths()['include']}", str(tmp_path / "generated.cpp")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a = generate(GENERATING[-1], tmp_path / "a")
    b = generate(GENERATING[-1], tmp_path / "b")
    assert a == b


@pytest.mark.parametrize("args, fragment", [
    (["--version", "v3"], "does not generate code"),
    (["--version", "v99"], "v99"),
])
def test_codegen_errors(args: list[str], fragment: str, tmp_path: Path) -> None:
    r = run_cli("codegen", "--out", str(tmp_path), *args)
    assert_one_line_error(r, fragment)


def test_codegen_out_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(run_cli("codegen", "--out", str(f)), "not a directory")
