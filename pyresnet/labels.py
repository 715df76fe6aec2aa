"""The 1000 ImageNet class labels, in the order of ResNet-50's logits (shipped as data/imagenet_classes.txt)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def labels() -> tuple[str, ...]:
    text = resources.files("pyresnet").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    out = tuple(line for line in text.splitlines() if line)
    assert len(out) == 1000, "corrupt installation: data/imagenet_classes.txt must hold 1000 labels"
    return out
