"""`pyresnet codegen`: write a generating version's build-time C++ source out for reading.

From v5_codegen on, a version directory holds `codegen.py`, which the build runs to write `generated.cpp` (the
shape-specialised kernels and the forward pass) into the build directory. This runs the same generator, from a
source checkout or from the copy of the sources shipped in the package, into a directory of the user's choice.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .. import registry
from .diff import csrc
from ..errors import UserError
from ..safeio import check_writable, read_regular, write_file

GENERATOR = "codegen.py"
OUTPUT = "generated.cpp"
MAX_OUTPUT_BYTES = 64 << 20  # a generated.cpp is about 100 kB


def generating_versions() -> list[str]:
    """Keys of the versions whose directory has a generator, in story order."""
    root = csrc()
    return [v.key for v in registry.REGISTRY if v.directory and (root / v.directory / GENERATOR).is_file()]


def write(version: str | None, out: Path) -> list[Path]:
    """Run VERSION's generator (default: the newest one that has one) into OUT; return the files it wrote."""
    have = generating_versions()
    if not have:
        raise UserError("no version here generates code (none has a codegen.py)")
    v = registry.get(version or have[-1])
    key = v.key
    if key not in have:
        raise UserError(f"version '{key}' does not generate code; these do: {', '.join(have)}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    target = check_writable(out / OUTPUT, UserError, "--out")  # before the generator runs
    assert v.directory is not None
    gen = csrc() / v.directory / GENERATOR
    # The generator writes into a private directory of ours; its output reaches OUT through safeio.write_file, so
    # a FIFO, device or symlink planted at OUT/generated.cpp is refused and a failure leaves an earlier file intact.
    with tempfile.TemporaryDirectory(prefix="pyresnet-codegen.") as tmp:
        r = subprocess.run([sys.executable, str(gen), tmp], capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"the {key} generator failed: {last}")
        text = read_regular(Path(tmp) / OUTPUT, MAX_OUTPUT_BYTES, UserError, f"the {key} generator's output")
    return [write_file(target, text, UserError, "--out")]
