"""A refactoring changes no bit of what a stage computes: every stage's logits, on every path this CPU can run, are
hashed and compared with tests/data/logits_sha256.json.

Each recorded machine (pyresnet.machine.slug) has its entry: the digest of the weights (random, seed 0, which are
the same bytes everywhere), the sha256 of the int8 stage's calibration file, and one sha256 per (stage, path) of the
float32 logits of seeded noise inputs (`noise0` alone for a slow stage, `noise0` and `noise1` otherwise; numpy's
generator gives the same inputs on every machine). The paths of a stage are its instruction sets (every name of
pyresnet.model.ISAS that it accepts on this CPU) and, where it has the options, Winograd on and off and 7- and 8-bit
weights. A stage is
named by its directory, so that renumbering the story keeps its record.

On a machine without an entry, or with other weights or another calibration (the calibration comes from photos
decoded by OpenCV, whose kernels differ between CPUs), the test is skipped and says why. To record this machine
(only before a refactoring, or for a stage whose computation is meant to change, and say so in its README):

    python tests/test_same_bits.py --record
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import pyresnet
from pyresnet import machine, registry
from pyresnet import weights as wts
from pyresnet.errors import UserError
from pyresnet.model import ISAS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import noise  # noqa: E402

RECORD = Path(__file__).resolve().parent / "data" / "logits_sha256.json"
COMPILED = [v for v in pyresnet.versions() if registry.get(v).directory is not None]
# The recorded bits are the normal build's; an AddressSanitizer build (the README's ASan run preloads libasan) is
# compiled with other code around every access, and with -ffast-math the compiler may then group sums differently.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def inputs(version: str) -> list[np.ndarray]:
    return [noise(0)] if registry.get(version).slow else [noise(0), noise(1)]


def paths(version: str) -> Iterator[tuple[str, dict]]:
    """(name, load options) of every path of `version` this CPU can run."""
    v = registry.get(version)
    isas = [i for i in ISAS if i != "auto"] if v.has("isa") else [None]
    winograd = [True, False] if "winograd" in v.options else [None]
    bits = [7, 8] if v.has("weight_bits") else [None]
    for isa in isas:
        for w in winograd:
            for b in bits:
                opts = {k: val for k, val in (("isa", isa), ("winograd", w), ("weight_bits", b)) if val is not None}
                yield "/".join([isa or "default"] + ([] if w is None else ["winograd" if w else "direct"])
                               + ([] if b is None else [f"{b}bit"])), opts


def digest(version: str, weights_dir: Path, options: dict) -> str | None:
    """sha256 of the logits of inputs(version) on this path; None when the stage or the CPU has no such path."""
    try:
        m = pyresnet.load(version, weights_dir, threads=2, **options)
    except UserError:
        return None
    h = hashlib.sha256()
    for x in inputs(version):
        h.update(np.ascontiguousarray(m.logits(x), dtype="<f4").tobytes())
    return h.hexdigest()


def calibration_sha(d: Path) -> str:
    return wts.read_manifest(d)["calibration"]["sha256"]


def entry() -> dict | None:
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    return record.get(machine.slug(machine.describe()))


CASES = [pytest.param(v, name, opts, id=f"{v}-{name}") for v in COMPILED for name, opts in paths(v)]


@pytest.mark.parametrize("version,path,options", CASES)
def test_logits_are_bitwise_as_recorded(version: str, path: str, options: dict, weights_of) -> None:
    if UNDER_ASAN:
        pytest.skip("the recorded bits are the normal build's, not an AddressSanitizer build's")
    e = entry()
    if e is None:
        pytest.skip(f"no record for this machine ({machine.slug(machine.describe())}) in {RECORD.name}")
    d = weights_of(version)
    if e["weights"] != wts.weights_digest(wts.read_manifest(d)):
        pytest.skip("the test weights differ from the recorded ones")
    if registry.get(version).has("int8") and e["calibration"] != calibration_sha(d):
        pytest.skip("the calibration differs from the recorded one (its photos decode differently on this CPU)")
    key = f"{registry.get(version).directory}/{path}"
    got = digest(version, d, options)
    if got is None:
        assert key not in e["logits"], f"{key} was recorded here but cannot be loaded now"
        pytest.skip(f"{version} has no path {path}, or this CPU cannot run it")
    assert key in e["logits"], f"{key} has no record on this machine: record it before changing the stage"
    assert got == e["logits"][key], f"{key}: the logits changed"


def record() -> None:
    """Write this machine's entry (the test weights and calibration rebuilt as the fixtures build them)."""
    import shutil
    import tempfile

    from conftest import calibration_images
    from pyresnet.accuracy.calibrate import calibrate

    with tempfile.TemporaryDirectory() as tmp:
        d = wts.random(0, out=Path(tmp) / "random-seed0")
        c = Path(tmp) / "calibrated"
        shutil.copytree(d, c)
        calibrate(c, calibration_images(Path(tmp) / "images"), progress=False)
        logits = {}
        for v in COMPILED:
            for name, opts in paths(v):
                got = digest(v, c if registry.get(v).has("int8") else d, opts)
                if got is not None:
                    logits[f"{registry.get(v).directory}/{name}"] = got
                    print(f"{v} {name} {got[:16]}", flush=True)
        record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
        record[machine.slug(machine.describe())] = {
            "weights": wts.weights_digest(wts.read_manifest(d)), "calibration": calibration_sha(c), "logits": logits}
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_same_bits.py --record")
    record()
