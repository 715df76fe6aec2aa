"""Activation ranges recorded by `pyresnet calibrate`, stored in the weights directory beside the tensors.

`calibration.bin` holds float32 [T][2]: the (min, max) of each tensor of arch.calibration_points(), in that order
(T = 70: the input, every conv's output as the network keeps it, every block's output). The manifest's
`calibration` entry covers it like a tensor (file, sha256) and says how it was made: the method, the number of
images, and a digest of the weights the ranges were computed from, so a calibration cannot silently outlive the
weights it describes. The images themselves (file name, absolute path and sha256 of each, so that evaluation can
keep them apart and a peer can be quantized from the same images) are listed in `calibration-images.json`, covered
by its own sha256 in the entry: the manifest stays the same size whatever the number of images, and the list has
a size limit of its own that the writer checks before it computes anything. A reduced-precision stage reads
calibration.bin in C++ with fopen; Python checks it first.

Manifests written before the list had its own file carry it in the entry (`sources`); they are still read. The
entry's schema is checked with the rest of the manifest (schema.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import arch
from ..errors import WeightsError
from ..safeio import check_writable, describe_size, read_regular, write_files
from .schema import (CALIBRATION_FILE, CALIBRATION_IMAGES_FILE, CALIBRATION_METHODS, MANIFEST, MAX_MANIFEST_BYTES,
                     read_manifest, valid_sources, validate_manifest)

FILE, IMAGES_FILE, METHODS = CALIBRATION_FILE, CALIBRATION_IMAGES_FILE, CALIBRATION_METHODS  # short names, here
IMAGES_FORMAT = "pyresnet-calibration-images/1"
MAX_IMAGES_BYTES = 32 << 20  # the image list's limit, for its writer and its reader alike (~200 bytes an image)
HOW = "run `pyresnet calibrate IMAGES|DIR --weights {d}` (a few dozen photos like the ones you will classify)"


class CalibrationError(WeightsError):
    """A weights directory without a usable calibration (missing, corrupt, or made for other weights)."""


def weights_digest(manifest: Mapping[str, Any]) -> str:
    """One sha256 over every tensor's sha256 (by name): which weights a calibration was made for."""
    h = hashlib.sha256()
    for name in sorted(manifest["tensors"]):
        h.update(f"{name}:{manifest['tensors'][name]['sha256']}\n".encode())
    return h.hexdigest()


def images_record(sources: Sequence[Mapping[str, str]]) -> bytes:
    """The bytes of calibration-images.json for `sources` ({name, path, sha256} per image), one image a line."""
    lines = ",\n".join(json.dumps({"name": s["name"], "path": s["path"], "sha256": s["sha256"]}) for s in sources)
    return (f'{{"format": "{IMAGES_FORMAT}", "images": [\n' + lines + "\n]}\n").encode()


def check_record_size(sources: Sequence[Mapping[str, str]], d: Path) -> bytes:
    """images_record(sources), or CalibrationError when its reader would refuse it (over MAX_IMAGES_BYTES).

    calibrate() calls it before the first image with placeholder digests (a sha256 is always 64 hex digits, so
    the size is exact), and write_calibration() again on what it writes: the writer never writes what the reader
    refuses."""
    data = images_record(sources)
    if len(data) > MAX_IMAGES_BYTES:
        raise CalibrationError(f"the list of {len(sources)} calibration images for {d} would take "
                               f"{describe_size(len(data))}, more than the limit of {describe_size(MAX_IMAGES_BYTES)} "
                               "its reader accepts; calibrate on fewer images (a few hundred are plenty)")
    return data


def check_writable_dir(d: Path) -> None:
    """Before any work: the files a calibration writes in weights directory d can be written (each absent or a
    regular file, the directory writable); CalibrationError naming the first that cannot."""
    for name in (IMAGES_FILE, FILE, MANIFEST):
        check_writable(Path(d) / name, CalibrationError, "calibration file")


def write_calibration(d: Path, ranges: np.ndarray, method: str, percentile: float | None,
                      sources: list[dict[str, str]], *, weights: str) -> dict[str, Any]:
    """Store `ranges` (T x 2: min, max), the image list and the manifest entry in weights directory d; returns the
    entry.

    weights: weights_digest() of the manifest the ranges were computed from, taken before computing. The manifest
    is read again here, just before writing: if its weights are not those any more (the directory was replaced
    meanwhile), nothing is written. The three files are written together (safeio.write_files), the manifest last:
    a failure leaves the earlier calibration, if any, as it was.
    """
    d = Path(d)
    points = arch.calibration_points()
    ranges = np.asarray(ranges, dtype="<f4")
    if ranges.shape != (len(points), 2) or not np.isfinite(ranges).all() or (ranges[:, 0] > ranges[:, 1]).any():
        raise CalibrationError(f"calibration ranges must be finite (min, max) pairs for {len(points)} tensors")
    listing = check_record_size(sources, d)
    manifest = read_manifest(d)
    if weights_digest(manifest) != weights:
        raise CalibrationError(f"the weights in {d} changed while calibrating; nothing was written "
                               "(calibrate again)")
    data = ranges.tobytes()
    entry = {"file": FILE, "sha256": hashlib.sha256(data).hexdigest(), "method": method, "percentile": percentile,
             "images": len(sources), "images_file": IMAGES_FILE, "images_sha256": hashlib.sha256(listing).hexdigest(),
             "weights": weights, "points": points}
    manifest = {**manifest, "calibration": entry}
    validate_manifest(manifest, d / MANIFEST)
    text = (json.dumps(manifest, indent=1) + "\n").encode()
    if len(text) > MAX_MANIFEST_BYTES:  # cannot happen (the entry has a fixed size); never write what is refused
        raise CalibrationError(f"{d / MANIFEST} would be larger than the limit of {describe_size(MAX_MANIFEST_BYTES)}")
    write_files([(d / IMAGES_FILE, listing), (d / FILE, data), (d / MANIFEST, text)], CalibrationError,
                "calibration file")
    return entry


def calibration_sources(d: Path, manifest: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """The images weights directory d was calibrated on ({name, path, sha256} each, in order); [] when it has no
    calibration. Read from calibration-images.json (at most MAX_IMAGES_BYTES, its sha256 the entry's), or from
    the entry itself in a manifest written before the list had its own file; CalibrationError otherwise."""
    d = Path(d)
    manifest = manifest or read_manifest(d)
    e = manifest.get("calibration")
    if e is None:
        return []
    if "sources" in e:
        return [dict(s) for s in e["sources"]]
    path = d / IMAGES_FILE
    raw = read_regular(path, MAX_IMAGES_BYTES, CalibrationError, "calibration image list",
                       "calibrate again: its writer stays within the limit")
    if hashlib.sha256(raw).hexdigest() != e["images_sha256"]:
        raise CalibrationError(f"{path} does not match its manifest entry (checksum); {HOW.format(d=d)}")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (RecursionError, ValueError, UnicodeDecodeError):  # covered by the checksum, so only if crafted with it
        raise CalibrationError(f"{path} is not a calibration image list; {HOW.format(d=d)}") from None
    images = record.get("images") if isinstance(record, dict) and record.get("format") == IMAGES_FORMAT else None
    if not valid_sources(images, e["images"]):
        raise CalibrationError(f"{path} does not list the {e['images']} images of its manifest entry as {{name, "
                               f"path, sha256}} objects; {HOW.format(d=d)}")
    return images


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
