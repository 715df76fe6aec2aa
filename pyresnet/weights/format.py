"""The weights format: a directory of raw float32 tensors and a manifest, written atomically, read with checks.

Format (described for readers in weights/FORMAT.md): a directory holding `manifest.json` and one raw little-endian
float32 file per tensor, `<torchvision state_dict key>.bin`. Conv weights are OHWI, fc weights [out, in],
BatchNorm stays as its four tensors. C++ reads the files with nothing but fopen; Python checks the manifest
against its schema and every file against the manifest first.
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
from ..errors import WeightsError
from ..safeio import open_regular, publish_dir, read_regular, write_new

FORMAT = "pyresnet-weights/1"
MANIFEST = "manifest.json"

HOW_TO_GET = (
    "get weights with one of: `pyresnet weights fetch` (downloads torchvision's IMAGENET1K_V1, needs the network), "
    "`pyresnet weights import resnet50-0676ba61.pth` (a file you copied here), or "
    "`pyresnet weights random --seed 0` (a deterministic test network; its labels are meaningless)"
)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a regular file, read in 1 MiB chunks: memory flat whatever its size. A FIFO, a device or a
    directory (a photo swapped for one after it was listed) is one UserError sentence, not a hang."""
    from ..errors import UserError

    fd, _ = open_regular(path, UserError, "file")
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _may_replace(out: Path) -> str | None:
    """None when `out` may be replaced by a new weights directory: it is empty, or holds only the files of one."""
    from .calibration import FILE, IMAGES_FILE

    names = {MANIFEST, FILE, IMAGES_FILE} | {f"{n}.bin" for n in arch.state_shapes()}
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


# The manifest's schema. A manifest comes from a directory a user may have downloaded: it is read only from a
# regular file of at most MAX_MANIFEST_BYTES, and every field is checked here before anything uses it.
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is about 62 kB
PREPROCESS_RANGE = (arch.INPUT, 1024)  # resize: from the crop (224) up to this
_TOP_FIELDS = {"format": str, "source": str, "seed": int, "url": str, "file": str, "preprocess": dict,
               "tensors": dict, "calibration": dict}
_TENSOR_FIELDS = {"shape": list, "dtype": str, "file": str, "sha256": str, "layout": str}


def _field_error(path: Path, field: str, want: str, got: Any) -> WeightsError:
    shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
    return WeightsError(f"{path}: field '{field}' must be {want}, got {shown}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_manifest(m: Any, path: Path) -> dict[str, Any]:
    """Check a parsed manifest against the schema; one WeightsError sentence naming the first bad field."""
    if not isinstance(m, dict):
        raise WeightsError(f"{path} is not a {FORMAT} manifest (it holds a JSON {type(m).__name__}, not an object)")
    if m.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a {FORMAT} manifest (field 'format' is {m.get('format')!r})")
    for key, value in m.items():
        kind = _TOP_FIELDS.get(key)
        if kind is None:
            raise WeightsError(f"{path}: unknown field '{key}' (the fields are: {', '.join(_TOP_FIELDS)})")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _field_error(path, key, f"a JSON {'number' if kind is int else kind.__name__}", value)
    if "seed" in m and not 0 <= m["seed"] < 1 << 64:
        raise _field_error(path, "seed", "a non-negative whole number", m["seed"])
    pre = m.get("preprocess", {})
    for key, value in pre.items():
        lo, hi = (arch.INPUT, arch.INPUT) if key == "crop" else PREPROCESS_RANGE
        if key not in ("resize", "crop"):
            raise WeightsError(f"{path}: unknown field 'preprocess.{key}' (the fields are: resize, crop)")
        if not _is_int(value) or not lo <= value <= hi:
            want = f"{lo}, the network's input size" if lo == hi else f"a whole number from {lo} to {hi}"
            raise _field_error(path, f"preprocess.{key}", want, value)
    if "calibration" in m:
        from .calibration import validate_entry

        validate_entry(m["calibration"], path)
    tensors = m.get("tensors")
    if tensors is None:
        raise WeightsError(f"{path}: field 'tensors' is missing")
    expected = arch.state_shapes()
    for name, e in tensors.items():
        if name not in expected:
            raise WeightsError(f"{path}: tensor '{name}' is not part of ResNet-50")
        if not isinstance(e, dict):
            raise _field_error(path, f"tensors.{name}", "an object", e)
        for key, value in e.items():
            kind = _TENSOR_FIELDS.get(key)
            if kind is None:
                raise WeightsError(f"{path}: unknown field 'tensors.{name}.{key}'")
            if not isinstance(value, kind):
                raise _field_error(path, f"tensors.{name}.{key}", f"a JSON {kind.__name__}", value)
    for name, shape in expected.items():
        e = tensors.get(name)
        if e is None:
            raise WeightsError(f"tensor '{name}' is missing from {path}")
        got = e.get("shape")
        if not isinstance(got, list) or not all(_is_int(n) for n in got) or tuple(got) != shape:
            raise WeightsError(f"tensor '{name}' has shape {got!r} in {path}, ResNet-50 needs {shape}")
        if e.get("dtype") != "float32" or e.get("file") != f"{name}.bin":
            raise WeightsError(f"tensor '{name}': {path} must list dtype float32 and file {name}.bin")
        digest = e.get("sha256")
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise _field_error(path, f"tensors.{name}.sha256", "64 lowercase hex digits", digest)
    return m


def read_manifest(d: Path) -> dict[str, Any]:
    """The checked manifest of weights directory `d` (WeightsError naming the problem otherwise)."""
    d = Path(d)
    if not d.is_dir():
        if d.is_file():
            raise WeightsError(f"{d} is a file, not a weights directory (give the directory that holds "
                               f"{MANIFEST}); {HOW_TO_GET}")
        if d.exists():
            raise WeightsError(f"{d} is not a directory, so not a weights directory; {HOW_TO_GET}")
        raise WeightsError(f"weights directory {d} does not exist; {HOW_TO_GET}")
    path = d / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise WeightsError(f"{d} has no {MANIFEST}, so it is not a pyresnet weights directory; {HOW_TO_GET}")
    raw = read_regular(path, MAX_MANIFEST_BYTES, WeightsError, "manifest",
                       "a real one is about 62 kB")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise WeightsError(f"{path} is not a {FORMAT} manifest (its JSON nests too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError, as is a 5000-digit number
        raise WeightsError(f"{path} is not valid JSON ({e})") from None
    return validate_manifest(manifest, path)


def preprocess_params(manifest: Mapping[str, Any]) -> tuple[int, int]:
    """(resize, crop) for a checked manifest: its own, else ImageNet's 256 and 224."""
    pre = manifest.get("preprocess", {})
    return int(pre.get("resize", 256)), int(pre.get("crop", arch.INPUT))


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
        from .calibration import read_calibration

        read_calibration(d, manifest, fresh=False)
    return state, manifest


def remove(d: Path) -> None:
    """Delete a weights directory (used by tests and by `weights fetch` on failure)."""
    shutil.rmtree(d, ignore_errors=True)
