"""The weights format: a directory of raw float32 tensors and a manifest, written atomically, read with checks.

Format (described for readers in weights/FORMAT.md): a directory holding `manifest.json` and one raw little-endian
float32 file per tensor, `<torchvision state_dict key>.bin`. Conv weights are OHWI, fc weights [out, in],
BatchNorm stays as its four tensors. C++ reads the files with nothing but fopen; Python checks the manifest
against its schema (schema.py) and every file against the manifest first, the calibration's files too when the
manifest has one (calibration.py: the imports go format -> calibration -> schema, never back).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import arch
from ..errors import UserError, WeightsError
from ..safeio import open_regular, publish_dir, read_regular, write_new
from .calibration import read_calibration
from .schema import CALIBRATION_FILE, CALIBRATION_IMAGES_FILE, FORMAT, MANIFEST, read_manifest, validate_manifest


def sha256_file(path: Path) -> str:
    """The hex sha256 of a regular file, read in 1 MiB chunks: memory flat whatever its size. A FIFO, a device or a
    directory (a photo swapped for one after it was listed) is one UserError sentence, not a hang."""
    fd, _ = open_regular(path, UserError, "file")
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _may_replace(out: Path) -> str | None:
    """None when `out` may be replaced by a new weights directory: it is empty, or holds only the files of one."""
    names = {MANIFEST, CALIBRATION_FILE, CALIBRATION_IMAGES_FILE} | {f"{n}.bin" for n in arch.state_shapes()}
    others = sorted(p.name for p in out.iterdir() if p.name not in names)
    if others:
        return (f"{out} exists and is not a pyresnet weights directory (it holds {others[0]!r}"
                f"{' and more' if len(others) > 1 else ''}); choose a new or empty directory")
    return None


def write(state: Mapping[str, np.ndarray], out: Path, meta: Mapping[str, Any]) -> Path:
    """Write a state (our names, OHWI) as a weights directory. Same state and meta -> identical bytes.

    The directory is built beside `out` and renamed into place when complete (safeio.publish_dir): a failure
    leaves no partial directory, and no file is written through a symlink. An existing weights directory at `out`
    is replaced; any other existing directory is refused.
    """
    expected = arch.state_shapes()
    arrays = {}
    for name, shape in expected.items():  # every shape checked before anything is created
        a = np.ascontiguousarray(state[name], dtype="<f4")
        if a.shape != shape:
            raise WeightsError(f"tensor '{name}' has shape {a.shape}, expected {shape}")
        arrays[name] = a
    out = Path(out)
    with publish_dir(out, _may_replace, WeightsError) as tmp:
        tensors = {}
        for name, a in arrays.items():
            data = a.tobytes()
            write_new(tmp / f"{name}.bin", data)
            tensors[name] = {"shape": list(a.shape), "dtype": "float32", "file": f"{name}.bin",
                             "sha256": hashlib.sha256(data).hexdigest(),
                             "layout": "OHWI" if a.ndim == 4 else ("[out, in]" if a.ndim == 2 else "[C]")}
        manifest = {"format": FORMAT, **meta, "tensors": tensors}
        validate_manifest(manifest, out / MANIFEST)  # what we write, we can read back
        write_new(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return out


def check(d: Path, *, keep: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Validate every tensor of a weights directory; return the tensors (when keep) and the manifest.

    Missing entry or file, truncated file, wrong shape or dtype, checksum mismatch: a WeightsError naming the tensor.
    """
    d = Path(d)
    manifest = read_manifest(d)
    entries = manifest["tensors"]
    state: dict[str, np.ndarray] = {}
    for name, shape in arch.state_shapes().items():
        e = entries[name]
        path = d / e["file"]
        nbytes = int(np.prod(shape)) * 4
        if not path.exists() and not path.is_symlink():
            raise WeightsError(f"tensor '{name}': file {path} is missing")
        try:
            data = read_regular(path, nbytes, WeightsError, f"tensor '{name}': file")
        except WeightsError as err:
            if "more than the limit" in str(err):
                raise WeightsError(f"tensor '{name}': {path} is larger than the {nbytes} bytes of its shape "
                                   "(not this tensor)") from None
            raise
        if len(data) != nbytes:
            raise WeightsError(f"tensor '{name}': {path} has {len(data)} bytes, expected {nbytes} "
                               "(truncated or not this tensor)")
        if hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise WeightsError(f"tensor '{name}': checksum mismatch in {path} (the file changed after it was written)")
        if keep:
            state[name] = np.frombuffer(data, dtype="<f4").reshape(shape)
    if "calibration" in manifest:  # covered by the manifest like a tensor: its integrity is checked with them
        read_calibration(d, manifest, fresh=False)
    return state, manifest


def remove(d: Path) -> None:
    """Delete a weights directory (used by tests and by `weights fetch` on failure)."""
    shutil.rmtree(d, ignore_errors=True)
