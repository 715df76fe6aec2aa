"""Versions that can run their 3x3 convs by Winograd: both paths agree with the oracle, Winograd is really what runs
by default (its logits are close to, but not bitwise, the direct path's), and the profile names the Winograd variant
of the 3x3 stride-1 convs.

A reduced-precision stage (the bf16 one) is held to its precision's bars instead of the oracle's 1e-3: its direct
path must be bitwise the stage it builds on (which has no Winograd), and its agreement with fp32 is
tests/test_reduced.py's.

A version takes part when it has the registry feature "winograd" (its native Model has a `winograd` property); no
test code is needed for a new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pyresnet
from pyresnet import arch, registry
from pyresnet.reference import check

from conftest import noise, photos
from test_reduced import BOUNDS

WINOGRAD = [v for v in pyresnet.versions() if registry.get(v).has("winograd")]
pytestmark = pytest.mark.skipif(not WINOGRAD, reason="no version with a Winograd path")


def reduced(version: str) -> bool:
    return registry.get(version).precision != "fp32"


@pytest.mark.parametrize("version", WINOGRAD)
def test_direct_path_matches_oracle(version: str, weights_dir: Path, oracle) -> None:
    native = pyresnet.load(version, weights_dir, 2, winograd=False).native
    assert native.winograd is False
    x = noise(4)
    if reduced(version):  # winograd=False is the stage it builds on, bit for bit
        base = registry.get(version).builds_on
        assert base is not None and not base.has("winograd")
        assert np.array_equal(native.logits(x), pyresnet.load(base.key, weights_dir, 2).logits(x))
        return
    verdict = check.compare(oracle.logits(x), native.logits(x))
    assert verdict.ok, verdict


@pytest.mark.parametrize("version", WINOGRAD)
def test_winograd_is_the_default_and_close_to_direct(version: str, weights_dir: Path, models, oracle) -> None:
    """Winograd rounds differently from the direct sum, so equal logits would mean it never ran. On these weights
    the two paths differ by at most 1.3e-5 of the largest logit (noise input; 1.7e-6 on the cat); 1e-4 leaves room.
    In bf16, where the transformed values are rounded to bf16 too, by 0.005 to 0.039 of it on the same inputs: at
    most tests/test_reduced.py's largest allowed error against fp32 for the precision."""
    m = models(version)
    assert m.native.winograd is True
    direct = pyresnet.load(version, weights_dir, 2, winograd=False)
    inputs = [noise(5)] + [pyresnet.preprocess(p) for p in photos()[:2]]
    for x in inputs:
        w, d = m.logits(x), direct.logits(x)
        assert not np.array_equal(w, d), "the Winograd model computed exactly the direct result"
        rel = BOUNDS[registry.get(version).precision][3] if reduced(version) else 1e-4
        assert np.abs(w - d).max() <= rel * np.abs(d).max()
        if not reduced(version):
            assert check.compare(oracle.logits(x), w).ok


@pytest.mark.parametrize("version", WINOGRAD)
def test_profile_names_the_winograd_layers(version: str, models) -> None:
    """Only 3x3 stride-1 convs run as Winograd, and every one of layer2 to layer4 does; layer1's are the stage's
    choice (the bf16 stage runs them directly: its README says why)."""
    ops = {r[0]: r[1] for r in models(version).native.profile(noise(0))}
    for c in arch.convs():
        winograd = c.kernel == 3 and c.stride == 1
        if winograd and c.name.startswith("layer1."):
            continue
        assert ("F(" in ops[c.name]) == winograd, (c.name, ops[c.name])


@pytest.mark.parametrize("version", WINOGRAD)
@pytest.mark.parametrize("value", [None, 2, 0.5, "yes"])
def test_winograd_takes_only_a_bool(version: str, value: object, weights_dir: Path) -> None:
    """None, numbers and strings are not silently read as a bool: a TypeError."""
    with pytest.raises(TypeError):
        registry.module(version).Model(str(weights_dir), 1, "", value)
