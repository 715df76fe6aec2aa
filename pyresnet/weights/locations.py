"""Where weights directories live, and which one is used when none is named: the one module that owns the default
locations (torchvision.py takes the fetched variants' directory names from here)."""

from __future__ import annotations

import os
from pathlib import Path

from .schema import MANIFEST

ENV_WEIGHTS = "PYRESNET_WEIGHTS"  # one weights directory to use instead of the default search
ENV_ROOT = "PYRESNET_WEIGHTS_ROOT"  # where weights directories live by default
# The directory `weights fetch` writes under the root for each of torchvision's variants; find() prefers them, in
# this order, to imported weights, and those to random ones.
FETCHED = {"v1": "imagenet1k_v1", "v2": "imagenet1k_v2"}


def source_root() -> Path | None:
    """The repository root when running from a source checkout (editable install), else None."""
    root = Path(__file__).resolve().parents[2]  # pyresnet/weights/locations.py -> the checkout
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
        order = list(FETCHED.values())
        if d.name in order:
            return order.index(d.name)
        return 3 if d.name.startswith("random") else 2

    return min(found, key=rank) if found else None
