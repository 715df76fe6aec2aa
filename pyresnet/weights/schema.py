"""The manifest of a weights directory: its schema, the tensors' entries and the calibration entry alike, and its
checked reading.

A manifest comes from a directory a user may have downloaded: it is read only from a regular file of at most
MAX_MANIFEST_BYTES, and every field is checked here before anything uses it. The calibration entry's schema lives
here beside the tensors' (and not in calibration.py) so that the modules that write and read a directory
(format.py, calibration.py) both import it and neither needs the other to check a manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .. import arch
from ..errors import WeightsError
from ..safeio import read_regular

FORMAT = "pyresnet-weights/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is about 62 kB
PREPROCESS_RANGE = (arch.INPUT, 1024)  # resize: from the crop (224) up to this

HOW_TO_GET = (
    "get weights with one of: `pyresnet weights fetch` (downloads torchvision's IMAGENET1K_V1, needs the network), "
    "`pyresnet weights import resnet50-0676ba61.pth` (a file you copied here), or "
    "`pyresnet weights random --seed 0` (a deterministic test network; its labels are meaningless)"
)

# The files a calibration adds to a directory (calibration.py writes and reads them) and the methods it knows.
CALIBRATION_FILE = "calibration.bin"
CALIBRATION_IMAGES_FILE = "calibration-images.json"
CALIBRATION_METHODS = ("max", "percentile")

_TOP_FIELDS = {"format": str, "source": str, "seed": int, "url": str, "file": str, "preprocess": dict,
               "tensors": dict, "calibration": dict}
_TENSOR_FIELDS = {"shape": list, "dtype": str, "file": str, "sha256": str, "layout": str}
_CALIBRATION_FIELDS = ("file", "sha256", "method", "percentile", "images", "images_file", "images_sha256",
                       "sources", "weights", "points")


def _field_error(path: Path, field: str, want: str, got: Any) -> WeightsError:
    shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
    return WeightsError(f"{path}: field '{field}' must be {want}, got {shown}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_sha256(v: Any) -> bool:
    """A hex sha256 as the manifest writes it: 64 lowercase hex digits."""
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def valid_sources(sources: Any, n: int) -> bool:
    """A list of n {name, path, sha256} objects (strings, the digest 64 lowercase hex digits): the calibration
    images, in the entry (older manifests) or in calibration-images.json."""
    return isinstance(sources, list) and len(sources) == n and all(
        isinstance(s, dict) and set(s) == {"name", "path", "sha256"} and isinstance(s["name"], str)
        and isinstance(s["path"], str) and is_sha256(s["sha256"]) for s in sources)


def validate_entry(e: Any, path: Path) -> None:
    """The manifest's `calibration` field (called by validate_manifest)."""
    def bad(field: str, want: str, got: Any) -> WeightsError:
        return _field_error(path, f"calibration.{field}", want, got)

    if not isinstance(e, dict):
        raise WeightsError(f"{path}: field 'calibration' must be a JSON object, got {type(e).__name__}")
    for key in e:
        if key not in _CALIBRATION_FIELDS:
            raise WeightsError(f"{path}: unknown field 'calibration.{key}'")
    if e.get("file") != CALIBRATION_FILE:
        raise bad("file", f"'{CALIBRATION_FILE}'", e.get("file"))
    for key in ("sha256", "weights"):
        if not is_sha256(e.get(key)):
            raise bad(key, "64 lowercase hex digits", e.get(key))
    if e.get("method") not in CALIBRATION_METHODS:
        raise bad("method", f"one of {', '.join(CALIBRATION_METHODS)}", e.get("method"))
    p = e.get("percentile")
    if not (p is None or (isinstance(p, (int, float)) and not isinstance(p, bool) and 50 <= p <= 100)):
        raise bad("percentile", "null or a number from 50 to 100", p)
    n = e.get("images")
    if not _is_int(n) or n < 1:
        raise bad("images", "a whole number of at least 1", n)
    if "sources" in e:  # the list in the manifest itself, as written before it had a file of its own
        if "images_file" in e or "images_sha256" in e:
            raise WeightsError(f"{path}: field 'calibration' has both 'sources' and 'images_file'; it is one or "
                               "the other")
        if not valid_sources(e["sources"], n):
            raise bad("sources", f"a list of {n} {{name, path, sha256}} objects", e["sources"])
    else:
        if e.get("images_file") != CALIBRATION_IMAGES_FILE:
            raise bad("images_file", f"'{CALIBRATION_IMAGES_FILE}'", e.get("images_file"))
        if not is_sha256(e.get("images_sha256")):
            raise bad("images_sha256", "64 lowercase hex digits", e.get("images_sha256"))
    if e.get("points") != arch.calibration_points():
        raise bad("points", "the names of arch.calibration_points(), in order", e.get("points"))


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
        if not is_sha256(e.get("sha256")):
            raise _field_error(path, f"tensors.{name}.sha256", "64 lowercase hex digits", e.get("sha256"))
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
