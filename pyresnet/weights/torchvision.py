"""torchvision's ResNet-50 checkpoints: the published variants, download (fetch), local .pth import, and the
conversion between torchvision's layout (conv OIHW) and ours (OHWI)."""

from __future__ import annotations

import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import arch
from ..errors import WeightsError
from ..progress import Progress
from ..safeio import MiB, describe_size, open_regular
from .format import sha256_file, write
from .locations import FETCHED, default_root
from .pth import read_state_dict

ENV_URL = "PYRESNET_WEIGHTS_URL"  # a mirror to download from instead of download.pytorch.org


@dataclass(frozen=True)
class Variant:
    """A published torchvision ResNet-50 checkpoint."""

    name: str  # directory name under the weights root (locations.FETCHED)
    url: str
    sha256_prefix: str  # torchvision puts the first 8 hex digits of the file's sha256 in its name
    resize: int  # the eval transform's shorter-side resize (224 crop for both)
    note: str


VARIANTS = {
    "v1": Variant(FETCHED["v1"], "https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61", 256,
                  "IMAGENET1K_V1, the original ResNet-50 weights (76.13% top-1), what the original project used"),
    "v2": Variant(FETCHED["v2"], "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "11ad3fa6", 232,
                  "IMAGENET1K_V2, torchvision's newer training recipe (80.86% top-1), evaluated at resize 232"),
}


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
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"no such file: {path}")
    state = from_torchvision(read_state_dict(path, torchvision_shapes()), str(path))
    out = Path(out) if out else default_root() / path.stem
    resize = next((v.resize for v in VARIANTS.values() if v.sha256_prefix in path.name), 256)
    return write(state, out, {"source": "import", "file": path.name, "preprocess": {"resize": resize, "crop": 224}})


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
        digest = sha256_file(tmp)
        if not digest.startswith(v.sha256_prefix):
            raise WeightsError(f"downloaded file from {url} has sha256 {digest[:8]}..., expected {v.sha256_prefix}...: "
                               "the download is corrupt or not this checkpoint")
        state = from_torchvision(read_state_dict(tmp, torchvision_shapes()), url)
        return write(state, out, {"source": v.name, "url": v.url, "preprocess": {"resize": v.resize, "crop": 224}})
    finally:
        tmp.unlink(missing_ok=True)
