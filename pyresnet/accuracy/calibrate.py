"""`pyresnet calibrate`: the range of every activation over a set of images, for post-training quantization.

The images run through the `py` version (numpy, fp32), which records each tensor of arch.calibration_points() as
the network keeps it. Two methods:
- max: the smallest and largest value seen over all images (what ONNX Runtime's MinMax calibrator does);
- percentile P: per image the P-th percentile of the values (and the (100 - P)-th for the low end), then the most
  extreme of those over the images; a few outliers then cannot stretch the range that every other value shares.
The result is stored in the weights directory (weights/calibration.py), with the file name and sha256 of every
image used, so that `pyresnet agree` can keep calibration and evaluation images apart. Everything that can fail
cheaply (the weights, the directory's writability, the size of the image list) is checked before the first image,
and the ranges are recorded under the fingerprint of the weights they were computed from, or not at all.
"""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import arch
from .. import weights as wts
from ..errors import UserError
from ..images import preprocess
from ..pipeline import read_ahead
from ..progress import Progress
from ..reference.numpy_ref import Model


class _Recording(Model):
    """The numpy network, noting the range of every calibration point as it goes."""

    def __init__(self, state: Any, method: str, percentile: float):
        super().__init__(state)
        self.method, self.percentile = method, percentile
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}

    def note(self, name: str, t: np.ndarray) -> None:
        if self.method == "max":
            lo, hi = float(t.min()), float(t.max())
        else:
            lo, hi = (float(v) for v in np.percentile(t, [100 - self.percentile, self.percentile]))
        self.lo[name] = min(lo, self.lo.get(name, lo))
        self.hi[name] = max(hi, self.hi.get(name, hi))

    def conv_bn(self, x: np.ndarray, conv: arch.Conv, relu_after: bool, prof: list | None = None) -> np.ndarray:
        y = super().conv_bn(x, conv, relu_after, prof)
        self.note(conv.name, y)
        return y

    def add_relu(self, out: np.ndarray, shortcut: np.ndarray, block: arch.Block) -> np.ndarray:
        y = super().add_relu(out, shortcut, block)
        self.note(f"{block.prefix}.out", y)
        return y

    def logits(self, x: np.ndarray, prof: list | None = None) -> np.ndarray:
        self.note("input", x)
        return super().logits(x, prof)


def calibrate(weights_dir: Path, images: list[Path], method: str = "max", percentile: float = 99.99,
              progress: bool = True, say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
              ) -> dict[str, Any]:
    """Record the activation ranges of `images` into weights_dir; returns the manifest entry written.

    An image that cannot be read is reported through `say` and skipped; none readable is an error.
    """
    if method not in wts.calibration.METHODS:
        raise UserError(f"calibration method must be one of {', '.join(wts.calibration.METHODS)}, got '{method}'")
    if method == "percentile" and not 50 <= percentile <= 100:
        raise UserError(f"--percentile must be from 50 to 100, got {percentile}")
    if not images:
        raise UserError("calibration needs at least one image")
    d = Path(weights_dir)
    # The fingerprint of the weights the ranges are computed from: the manifest of the very check() that gave the
    # tensors. write_calibration() compares it with the manifest it finds just before writing.
    state, manifest = wts.check(d)
    fingerprint = wts.weights_digest(manifest)
    # The cheap checks, before the first image: the files can be written, and the image list will be within the
    # size its reader accepts (a digest is always 64 hex digits, so the placeholder gives the exact size).
    wts.calibration.check_writable_dir(d)
    wts.calibration.check_record_size([_source(p, "0" * 64) for p in images], d)
    resize, crop = wts.preprocess_params(manifest)
    model = _Recording(state, method, percentile)
    sources = []
    bar = Progress(len(images), "calibrate", unit="images", enabled=progress and len(images) > 1)
    with closing(read_ahead(images, lambda p: preprocess(p, resize=resize, crop=crop))) as items:
        for item in items:
            bar.advance()
            if item.x is None:
                bar.clear()
                say(f"pyresnet: error: {item.error} (skipped)")
                continue
            model.logits(item.x)
            sources.append(_source(item.path, wts.sha256_file(item.path)))
    bar.close()
    if not sources:
        raise UserError(f"none of the {len(images)} images could be read, so there is nothing to calibrate on")
    points = arch.calibration_points()
    ranges = np.array([[model.lo[p], model.hi[p]] for p in points], dtype=np.float32)
    return wts.write_calibration(d, ranges, method, percentile if method == "percentile" else None, sources,
                                 weights=fingerprint)


def _source(path: Path, sha256: str) -> dict[str, str]:
    """What the calibration record keeps of an image: its file name, absolute path and sha256."""
    return {"name": path.name, "path": str(path.resolve()), "sha256": sha256}
