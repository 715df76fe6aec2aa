"""pyresnet.load(): one version of the lab, its weights checked, behind one small API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import registry, weights as wts
from .errors import UserError, WeightsError
from .labels import labels
from .machine import cpus_allowed
from .preprocess import ImageLike, preprocess

MAX_THREADS = 1024


def check_threads(threads: Any) -> int:
    """None -> the CPUs this process may use (its affinity mask, not the machine's total); otherwise a whole number from 1 to MAX_THREADS."""
    if threads is None:
        return cpus_allowed()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise UserError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}")
    return int(threads)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - logits.max())
    return e / e.sum()


class Model:
    """A loaded version: logits() on a preprocessed image, classify() on an image file."""

    def __init__(self, version: registry.Version, native: Any, weights_dir: Path, manifest: dict, threads: int):
        self.version = version
        self.native = native  # the version's own model object (C++ or numpy)
        self.weights_dir = weights_dir
        self.manifest = manifest
        self.requested_threads = threads

    @property
    def threads(self) -> int:
        """Threads the version really uses (1 for the single-threaded stages)."""
        return int(self.native.threads)

    @property
    def random_weights(self) -> bool:
        return self.manifest.get("source") == "random"

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: float32 (224, 224, 3), as preprocess() returns -> float32 (1000,) logits."""
        return self.native.logits(x)

    def classify(self, image: ImageLike, topk: int = 5) -> list[tuple[int, str, float]]:
        """[(class index, label, probability), ...] for the topk classes, highest first."""
        if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= 1000:
            raise UserError(f"topk must be a whole number from 1 to 1000, got {topk!r}")
        pre = self.manifest.get("preprocess", {})
        x = preprocess(image, resize=int(pre.get("resize", 256)), crop=int(pre.get("crop", 224)))
        return self.top(self.logits(x), topk)

    @staticmethod
    def top(logits: np.ndarray, topk: int) -> list[tuple[int, str, float]]:
        p = softmax(logits)
        idx = np.argsort(-logits, kind="stable")[:topk]
        names = labels()
        return [(int(i), names[i], float(p[i])) for i in idx]

    def __repr__(self) -> str:
        return f"<pyresnet.Model {self.version.key} threads={self.threads} weights={self.weights_dir}>"


def load(version: str, weights: str | os.PathLike | None = None, threads: int | None = None) -> Model:
    """Load a version ('py', 'v1', ... or a directory name like 'v1_origin') with checked weights.

    weights: a weights directory; default $PYRESNET_WEIGHTS, else the best one found under the default location
    (see pyresnet.weights.find). threads: default all CPUs this process may use; single-threaded versions
    ignore it. Every tensor is validated (shape, size, sha256) before the model is built.
    """
    v = registry.get(version)
    n = check_threads(threads)
    mod = registry.module(v.key)
    d = wts.find(weights)
    if d is None:
        raise WeightsError(f"no weights found under {wts.default_root()}; {wts.HOW_TO_GET}")
    state, manifest = wts.check(d, keep=v.directory is None)
    if v.directory is None:
        native = mod.Model(state)
    else:
        try:
            native = mod.Model(str(Path(d).resolve()), n)
        except mod.WeightsError as e:
            raise WeightsError(str(e)) from None
    return Model(v, native, Path(d), manifest, n)
