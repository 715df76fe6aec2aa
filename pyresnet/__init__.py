"""pyresnet: ResNet-50 inference hand-written in C++ several times over, one optimisation stage at a time.

    import pyresnet
    pyresnet.versions()                          # ['py', 'v1', ...]
    pyresnet.sample_image()                      # the packaged sample photo (a cat)
    m = pyresnet.load('v1', weights=DIR)          # threads=None: all CPUs this process may use
    x = pyresnet.preprocess('cat.jpg')            # float32 (224, 224, 3), HWC, normalised
    m.logits(x)                                   # float32 (1000,)
    m.classify('cat.jpg', topk=5)                 # [(index, label, prob), ...]
    pyresnet.ops('v1').conv2d(x, w, stride, pad)  # one op of one version, on numpy arrays
"""

from __future__ import annotations

from types import ModuleType

from .errors import ImageError, UnknownVersionError, UserError, WeightsError
from .labels import labels
from .model import Model, load
from .images import preprocess
from .registry import REGISTRY, versions
from .sample import sample_image

__version__ = "0.1.0"


def ops(version: str) -> ModuleType:
    """The module of a version, whose functions conv2d, batchnorm, relu, maxpool, avgpool, add, fc run one op."""
    from . import registry

    return registry.module(version)


__all__ = ["versions", "load", "preprocess", "ops", "labels", "Model", "REGISTRY", "UserError", "WeightsError",
           "ImageError", "UnknownVersionError", "sample_image"]
