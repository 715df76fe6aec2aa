"""The weights format, and getting weights: fetch (torchvision's ImageNet files), import (a local .pth), random.

Format (described for readers in weights/FORMAT.md): a directory holding `manifest.json` and one raw little-endian
float32 file per tensor, `<torchvision state_dict key>.bin`. Conv weights are OHWI, fc weights [out, in],
BatchNorm stays as its four tensors. C++ reads the files with nothing but fopen; Python checks the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import arch
from .errors import WeightsError
from .progress import Progress
from .safeio import MiB, describe_size, open_regular, publish_dir, read_regular, write_new

FORMAT = "pyresnet-weights/1"
MANIFEST = "manifest.json"
ENV_WEIGHTS = "PYRESNET_WEIGHTS"  # one weights directory to use instead of the default search
ENV_URL = "PYRESNET_WEIGHTS_URL"  # a mirror to download from instead of download.pytorch.org
ENV_ROOT = "PYRESNET_WEIGHTS_ROOT"  # where weights directories live by default


@dataclass(frozen=True)
class Variant:
    """A published torchvision ResNet-50 checkpoint."""

    name: str  # directory name under the weights root
    url: str
    sha256_prefix: str  # torchvision puts the first 8 hex digits of the file's sha256 in its name
    resize: int  # the eval transform's shorter-side resize (224 crop for both)
    note: str


VARIANTS = {
    "v1": Variant("imagenet1k_v1", "https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61", 256,
                  "IMAGENET1K_V1, the original ResNet-50 weights (76.13% top-1), what the original project used"),
    "v2": Variant("imagenet1k_v2", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "11ad3fa6", 232,
                  "IMAGENET1K_V2, torchvision's newer training recipe (80.86% top-1), evaluated at resize 232"),
}

HOW_TO_GET = (
    "get weights with one of: `pyresnet weights fetch` (downloads torchvision's IMAGENET1K_V1, needs the network), "
    "`pyresnet weights import resnet50-0676ba61.pth` (a file you copied here), or "
    "`pyresnet weights random --seed 0` (a deterministic test network; its labels are meaningless)"
)


# ---------------------------------------------------------------------------------------------------- locations

def source_root() -> Path | None:
    """The repository root when running from a source checkout (editable install), else None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "csrc").is_dir() else None


def default_root() -> Path:
    """Where weights live by default: $PYRESNET_WEIGHTS_ROOT, else weights/ in a source checkout, else the user
    cache directory."""
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT])
    src = source_root()
    if src is not None:
        return src / "weights"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pyresnet" / "weights"


def find(explicit: str | os.PathLike | None = None) -> Path | None:
    """The weights directory to use: `explicit`, else $PYRESNET_WEIGHTS, else the best one under default_root().

    Preference under the root: ImageNet v1, ImageNet v2, other imported weights, then random ones.
    Returns None when nothing is found (an explicit or $PYRESNET_WEIGHTS directory is returned as given, and
    checked when loaded, so that its problem is reported rather than silently skipped).
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(ENV_WEIGHTS):
        return Path(os.environ[ENV_WEIGHTS])
    root = default_root()
    if not root.is_dir():
        return None
    found = [d for d in sorted(root.iterdir()) if (d / MANIFEST).is_file()]

    def rank(d: Path) -> int:
        order = [VARIANTS["v1"].name, VARIANTS["v2"].name]
        if d.name in order:
            return order.index(d.name)
        return 3 if d.name.startswith("random") else 2

    return min(found, key=rank) if found else None


# ---------------------------------------------------------------------------------------------------- format

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _may_replace(out: Path) -> str | None:
    """None when `out` may be replaced by a new weights directory: it is empty, or holds only the files of one."""
    names = {MANIFEST} | {f"{n}.bin" for n in arch.state_shapes()}
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
               "tensors": dict}
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
    return state, manifest


# ---------------------------------------------------------------------------------------------------- conversion

def torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of torchvision's ResNet-50 (conv weights OIHW)."""
    return {k: (s[0], s[3], s[1], s[2]) if len(s) == 4 else s for k, s in arch.state_shapes().items()}


def from_torchvision(sd: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """torchvision state_dict (conv OIHW) -> our state (conv OHWI); every tensor checked by name and shape."""
    state = {}
    for name, shape in arch.state_shapes().items():
        if name not in sd:
            raise WeightsError(f"{source} has no tensor '{name}': not a torchvision ResNet-50 state_dict")
        a = np.asarray(sd[name], dtype=np.float32)
        if a.ndim == 4:
            a = a.transpose(0, 2, 3, 1)  # OIHW -> OHWI
        if a.shape != shape:
            raise WeightsError(f"{source}: tensor '{name}' has shape {a.shape} (our layout), ResNet-50 needs {shape}")
        if not np.isfinite(a).all():
            raise WeightsError(f"{source}: tensor '{name}' holds NaN or infinite values")
        state[name] = np.ascontiguousarray(a)
    return state


def to_torchvision(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our state -> torchvision names and layouts (conv OIHW), e.g. to torch.save or to load into the oracle."""
    return {k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if v.ndim == 4 else v for k, v in state.items()}


def import_pth(path: Path, out: Path | None = None) -> Path:
    """Convert a local torchvision-format ResNet-50 .pth into a weights directory."""
    from .pth import read_state_dict

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"no such file: {path}")
    state = from_torchvision(read_state_dict(path, torchvision_shapes()), str(path))
    out = Path(out) if out else default_root() / path.stem
    resize = next((v.resize for v in VARIANTS.values() if v.sha256_prefix in path.name), 256)
    return write(state, out, {"source": "import", "file": path.name, "preprocess": {"resize": resize, "crop": 224}})


# ---------------------------------------------------------------------------------------------------- fetch

MAX_DOWNLOAD_BYTES = 128 * MiB  # both checkpoints are about 98 MiB; a download is cut off past this


class FetchError(WeightsError):
    """The download itself failed (offline, refused, timed out); `short` says so without the advice."""

    def __init__(self, short: str, message: str):
        super().__init__(message)
        self.short = short


def fetch(variant: str = "v1", out: Path | None = None, progress: bool = True) -> Path:
    """Download torchvision's ResNet-50 checkpoint, check its hash, convert it into a weights directory."""
    if variant not in VARIANTS:
        raise WeightsError(f"unknown variant '{variant}'; choose one of: {', '.join(VARIANTS)}")
    v = VARIANTS[variant]
    out = Path(out) if out else default_root() / v.name
    url = os.environ.get(ENV_URL) or v.url
    if urllib.parse.urlsplit(url).scheme == "file":  # a local mirror: a regular file, never a FIFO or a device
        fd, _ = open_regular(urllib.request.url2pathname(urllib.parse.urlsplit(url).path), WeightsError,
                             "download source")
        os.close(fd)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".pth", dir=out.parent)
    tmp = Path(tmp_name)
    too_big = (f"the download from {url} is larger than {describe_size(MAX_DOWNLOAD_BYTES)}, and the checkpoint is "
               "about 98 MiB: it is not this checkpoint")
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    total = int(r.headers.get("Content-Length") or 0)
                    if total > MAX_DOWNLOAD_BYTES:
                        raise WeightsError(too_big)
                    bar = Progress(total, f"fetch {v.name}", unit="MB", scale=1e-6, enabled=progress)
                    got = 0
                    for chunk in iter(lambda: r.read(1 << 20), b""):
                        got += len(chunk)
                        if got > MAX_DOWNLOAD_BYTES:
                            raise WeightsError(too_big)
                        f.write(chunk)
                        bar.advance(len(chunk))
                    bar.close()
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise FetchError(
                    f"could not download {url} ({reason})",
                    f"could not download {url} ({reason}); this machine may be offline. Instead: copy that file here "
                    f"and run `pyresnet weights import {Path(v.url).name}`, or run `pyresnet weights random --seed 0` "
                    "for a deterministic test network"
                ) from None
        digest = _sha256(tmp)
        if not digest.startswith(v.sha256_prefix):
            raise WeightsError(f"downloaded file from {url} has sha256 {digest[:8]}..., expected {v.sha256_prefix}...: "
                               "the download is corrupt or not this checkpoint")
        from .pth import read_state_dict

        state = from_torchvision(read_state_dict(tmp, torchvision_shapes()), url)
        return write(state, out, {"source": v.name, "url": v.url, "preprocess": {"resize": v.resize, "crop": 224}})
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- random

def _natural_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """An n x n x 3 image of noise with a 1/f amplitude spectrum, like natural photos, unit variance per channel.

    Calibrated on white noise, the random network gives logits 50-100x larger on real photos than on noise;
    calibrated on this, real photos land within about 1-100 (measured on ../shared/images).
    """
    f = np.fft.fftfreq(n)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = np.fft.fft2(rng.standard_normal((n, n))) / radius
        spectrum[0, 0] = 0.0
        img = np.real(np.fft.ifft2(spectrum))
        channels.append(img / img.std())
    return np.stack(channels, axis=-1).astype(np.float32)


def random_state(seed: int) -> dict[str, np.ndarray]:
    """A deterministic ResNet-50 whose BatchNorm layers do real work.

    Conv weights: torchvision's init (Kaiming normal, fan_out, ReLU gain); fc: nn.Linear's default uniform init.
    BatchNorm: with identity statistics (mean 0, var 1) a version that skipped BN would still look right, so we
    randomise all four tensors. To keep activations near O(1) through fifty layers, we run the network once
    (numpy, in float64) on a seeded image-like input (noise with a natural image's 1/f spectrum) and derive each
    BN's running statistics from the conv output it actually sees, then perturb them: mean += 0.2 std * N(0, 1), var *= U(0.5, 2), gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2).
    Statistics are rounded to 4 significant digits, so the bytes do not depend on the last bits of the BLAS.
    """
    from .numpy_ref import Model

    rng = np.random.Generator(np.random.PCG64(seed))
    state: dict[str, np.ndarray] = {}
    for c in arch.convs():
        std = np.sqrt(2.0 / (c.cout * c.kernel * c.kernel))
        state[f"{c.name}.weight"] = rng.standard_normal(c.weight_shape).astype(np.float32).astype(np.float64) * std
    bound = 1.0 / np.sqrt(arch.FC_IN)
    state["fc.weight"] = rng.uniform(-bound, bound, (arch.CLASSES, arch.FC_IN))
    state["fc.bias"] = rng.uniform(-bound, bound, (arch.CLASSES,))
    x = _natural_noise(rng, arch.INPUT)

    def round4(a: np.ndarray) -> np.ndarray:
        return np.array([float(f"{v:.4g}") for v in a])

    class Calibrating(Model):
        def bn(self, y: np.ndarray, conv: arch.Conv) -> np.ndarray:
            mean, var = y.mean(axis=(0, 1)), np.maximum(y.var(axis=(0, 1)), 1e-4)
            s = self.state
            s[f"{conv.bn}.running_mean"] = round4(mean + 0.2 * np.sqrt(var) * rng.standard_normal(conv.cout))
            s[f"{conv.bn}.running_var"] = round4(var * rng.uniform(0.5, 2.0, conv.cout))
            s[f"{conv.bn}.weight"] = round4(rng.uniform(0.5, 1.5, conv.cout))
            s[f"{conv.bn}.bias"] = round4(0.2 * rng.standard_normal(conv.cout))
            return super().bn(y, conv)

    Calibrating(state).logits(x)
    return {k: v.astype(np.float32) for k, v in state.items()}


def random(seed: int, out: Path | None = None) -> Path:
    """Write the deterministic random network for `seed` (same seed -> identical bytes)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WeightsError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out) if out else default_root() / f"random-seed{seed}"
    return write(random_state(seed), out, {"source": "random", "seed": seed,
                                           "preprocess": {"resize": 256, "crop": 224}})


def remove(d: Path) -> None:
    """Delete a weights directory (used by tests and by `weights fetch` on failure)."""
    shutil.rmtree(d, ignore_errors=True)
