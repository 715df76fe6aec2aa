"""Activation ranges recorded by `pyresnet calibrate`, stored in the weights directory beside the tensors.

`calibration.bin` holds float32 [T][2]: the (min, max) of each tensor of arch.calibration_points(), in that order
(T = 70: the input, every conv's output as the network keeps it, every block's output). The manifest's
`calibration` entry covers it like a tensor (file, sha256) and says how it was made: the method, the images (file
name, absolute path and sha256 of each, so that evaluation can keep them apart and a peer can be quantized from
the same images), and a digest of the weights it was made for, so a
calibration cannot silently outlive the weights it describes. A reduced-precision stage reads the file in C++ with
fopen; Python checks it first.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import arch
from ..errors import WeightsError
from ..safeio import read_regular, write_new
from .format import MANIFEST, read_manifest, validate_manifest

FILE = "calibration.bin"
METHODS = ("max", "percentile")
HOW = "run `pyresnet calibrate IMAGES|DIR --weights {d}` (a few dozen photos like the ones you will classify)"


class CalibrationError(WeightsError):
    """A weights directory without a usable calibration (missing, corrupt, or made for other weights)."""


def weights_digest(manifest: Mapping[str, Any]) -> str:
    """One sha256 over every tensor's sha256 (by name): which weights a calibration was made for."""
    h = hashlib.sha256()
    for name in sorted(manifest["tensors"]):
        h.update(f"{name}:{manifest['tensors'][name]['sha256']}\n".encode())
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_new(tmp, data)
        os.replace(tmp, path)  # replaces a symlink at `path` itself, never writes through it
    finally:
        tmp.unlink(missing_ok=True)


def write_calibration(d: Path, ranges: np.ndarray, method: str, percentile: float | None,
                      sources: list[dict[str, str]]) -> dict[str, Any]:
    """Store `ranges` (T x 2: min, max) and its manifest entry in weights directory d; returns the entry."""
    d = Path(d)
    points = arch.calibration_points()
    ranges = np.asarray(ranges, dtype="<f4")
    if ranges.shape != (len(points), 2) or not np.isfinite(ranges).all() or (ranges[:, 0] > ranges[:, 1]).any():
        raise CalibrationError(f"calibration ranges must be finite (min, max) pairs for {len(points)} tensors")
    manifest = read_manifest(d)
    data = ranges.tobytes()
    entry = {"file": FILE, "sha256": hashlib.sha256(data).hexdigest(), "method": method, "percentile": percentile,
             "images": len(sources), "sources": sources, "weights": weights_digest(manifest), "points": points}
    manifest = {**manifest, "calibration": entry}
    validate_manifest(manifest, d / MANIFEST)
    _atomic_write(d / FILE, data)
    _atomic_write(d / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return entry


def validate_entry(e: Any, path: Path) -> None:
    """The manifest's `calibration` field (called by format.validate_manifest)."""
    def bad(field: str, want: str, got: Any) -> WeightsError:
        shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
        return WeightsError(f"{path}: field 'calibration.{field}' must be {want}, got {shown}")

    def hex64(v: Any) -> bool:
        return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)

    if not isinstance(e, dict):
        raise WeightsError(f"{path}: field 'calibration' must be a JSON object, got {type(e).__name__}")
    known = {"file", "sha256", "method", "percentile", "images", "sources", "weights", "points"}
    for key in e:
        if key not in known:
            raise WeightsError(f"{path}: unknown field 'calibration.{key}'")
    if e.get("file") != FILE:
        raise bad("file", f"'{FILE}'", e.get("file"))
    for key in ("sha256", "weights"):
        if not hex64(e.get(key)):
            raise bad(key, "64 lowercase hex digits", e.get(key))
    if e.get("method") not in METHODS:
        raise bad("method", f"one of {', '.join(METHODS)}", e.get("method"))
    p = e.get("percentile")
    if not (p is None or (isinstance(p, (int, float)) and not isinstance(p, bool) and 50 <= p <= 100)):
        raise bad("percentile", "null or a number from 50 to 100", p)
    n = e.get("images")
    sources = e.get("sources")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise bad("images", "a whole number of at least 1", n)
    if not isinstance(sources, list) or len(sources) != n or not all(
            isinstance(s, dict) and set(s) == {"name", "path", "sha256"} and isinstance(s["name"], str)
            and isinstance(s["path"], str) and hex64(s["sha256"]) for s in sources):
        raise bad("sources", f"a list of {n} {{name, path, sha256}} objects", sources)
    if e.get("points") != arch.calibration_points():
        raise bad("points", "the names of arch.calibration_points(), in order", e.get("points"))


def read_calibration(d: Path, manifest: Mapping[str, Any] | None = None,
                     fresh: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """(ranges T x 2, entry) of weights directory d; CalibrationError naming `pyresnet calibrate` otherwise.

    fresh: also require that it was made for these weights (the int8 stage does; checking a directory's integrity
    for an fp32 stage does not)."""
    d = Path(d)
    manifest = manifest or read_manifest(d)
    e = manifest.get("calibration")
    if e is None:
        raise CalibrationError(f"{d} has no calibration, which the int8 stage needs; {HOW.format(d=d)}")
    if fresh and e["weights"] != weights_digest(manifest):
        raise CalibrationError(f"the calibration in {d} was made for other weights (stale); {HOW.format(d=d)}")
    points = len(arch.calibration_points())
    data = read_regular(d / FILE, points * 8, CalibrationError, "calibration file")
    if len(data) != points * 8 or hashlib.sha256(data).hexdigest() != e["sha256"]:
        raise CalibrationError(f"{d / FILE} does not match its manifest entry (size or checksum); "
                               f"{HOW.format(d=d)}")
    ranges = np.frombuffer(data, dtype="<f4").reshape(points, 2)
    if not np.isfinite(ranges).all() or (ranges[:, 0] > ranges[:, 1]).any():
        raise CalibrationError(f"{d / FILE} holds ranges that are not finite (min, max) pairs; {HOW.format(d=d)}")
    return ranges, dict(e)
