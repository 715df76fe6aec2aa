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
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import arch
from .errors import WeightsError
from .progress import Progress

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


def write(state: Mapping[str, np.ndarray], out: Path, meta: Mapping[str, Any]) -> Path:
    """Write a state (our names, OHWI) as a weights directory. Same state and meta -> identical bytes."""
    expected = arch.state_shapes()
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the manifest is written last: no manifest, no usable directory
    tensors = {}
    for name, shape in expected.items():
        a = np.ascontiguousarray(state[name], dtype="<f4")
        if a.shape != shape:
            raise WeightsError(f"tensor '{name}' has shape {a.shape}, expected {shape}")
        path = out / f"{name}.bin"
        a.tofile(path)
        tensors[name] = {"shape": list(shape), "dtype": "float32", "file": path.name, "sha256": _sha256(path),
                         "layout": "OHWI" if len(shape) == 4 else ("[out, in]" if len(shape) == 2 else "[C]")}
    manifest = {"format": FORMAT, **meta, "tensors": tensors}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def read_manifest(d: Path) -> dict[str, Any]:
    d = Path(d)
    if not d.is_dir():
        raise WeightsError(f"weights directory {d} does not exist; {HOW_TO_GET}")
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except FileNotFoundError:
        raise WeightsError(f"{d} has no {MANIFEST}, so it is not a pyresnet weights directory; {HOW_TO_GET}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{d / MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("tensors"), dict):
        raise WeightsError(f"{d / MANIFEST} is not a {FORMAT} manifest")
    return manifest


def check(d: Path, *, keep: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Validate every tensor of a weights directory; return the tensors (when keep) and the manifest.

    Missing entry or file, truncated file, wrong shape or dtype, checksum mismatch: a WeightsError naming the tensor.
    """
    d = Path(d)
    manifest = read_manifest(d)
    entries = manifest["tensors"]
    state: dict[str, np.ndarray] = {}
    for name, shape in arch.state_shapes().items():
        e = entries.get(name)
        if not isinstance(e, dict):
            raise WeightsError(f"tensor '{name}' is missing from {d / MANIFEST}")
        if tuple(e.get("shape", ())) != shape:
            raise WeightsError(f"tensor '{name}' has shape {tuple(e.get('shape', ()))} in the manifest, "
                               f"ResNet-50 needs {shape}")
        if e.get("dtype") != "float32" or e.get("file") != f"{name}.bin":
            raise WeightsError(f"tensor '{name}': the manifest must list dtype float32 and file {name}.bin")
        path = d / e["file"]
        if not path.is_file():
            raise WeightsError(f"tensor '{name}': file {path} is missing")
        nbytes = int(np.prod(shape)) * 4
        if path.stat().st_size != nbytes:
            raise WeightsError(f"tensor '{name}': {path} has {path.stat().st_size} bytes, expected {nbytes} "
                               "(truncated or not this tensor)")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != e.get("sha256"):
            raise WeightsError(f"tensor '{name}': checksum mismatch in {path} (the file changed after it was written)")
        if keep:
            state[name] = np.frombuffer(data, dtype="<f4").reshape(shape)
    return state, manifest


# ---------------------------------------------------------------------------------------------------- conversion

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
        state[name] = np.ascontiguousarray(a)
    return state


def to_torchvision(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our state -> torchvision names and layouts (conv OIHW), e.g. to torch.save or to load into the oracle."""
    return {k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if v.ndim == 4 else v for k, v in state.items()}


def import_pth(path: Path, out: Path | None = None) -> Path:
    """Convert a local torchvision-format ResNet-50 .pth into a weights directory."""
    from .pth import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no such file: {path}")
    state = from_torchvision(read_state_dict(path), str(path))
    out = Path(out) if out else default_root() / path.stem
    resize = next((v.resize for v in VARIANTS.values() if v.sha256_prefix in path.name), 256)
    return write(state, out, {"source": "import", "file": path.name, "preprocess": {"resize": resize, "crop": 224}})


# ---------------------------------------------------------------------------------------------------- fetch

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
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".pth", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    total = int(r.headers.get("Content-Length") or 0)
                    bar = Progress(total, f"fetch {v.name}", unit="MB", scale=1e-6, enabled=progress)
                    for chunk in iter(lambda: r.read(1 << 20), b""):
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

        state = from_torchvision(read_state_dict(tmp), url)
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
