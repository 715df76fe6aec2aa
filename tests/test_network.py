"""Every fp32 version against the torch oracle on the same random-BN weights: same top-5, max|delta| <= 1e-3 max|logit|.

Parametrised over pyresnet.versions(): a new version is tested here with no new test code (reduced-precision
stages, registry precision 'bf16' or 'int8', are held to their agreement with fp32 instead). Slow versions (v1 at
-O0 takes tens of seconds per image) get one input; the others get two noise inputs and every test photo.
"""

from __future__ import annotations

import pytest

import pyresnet
from pyresnet import registry
from pyresnet.reference import check

from conftest import noise, photos

INPUTS = ["noise0", "noise1"] + [p.name for p in photos()]


def _input(name: str):
    if name.startswith("noise"):
        return noise(int(name[5:]))
    return pyresnet.preprocess(next(p for p in photos() if p.name == name))


CASES = [(v, name) for v in pyresnet.versions() if registry.get(v).precision == "fp32"
         for name in (INPUTS[:1] if registry.get(v).slow else INPUTS)]


@pytest.mark.parametrize("version,input_name", CASES)
def test_matches_oracle(version: str, input_name: str, logits_of, oracle) -> None:
    x = _input(input_name)
    expected = oracle.logits(x)
    got = logits_of(version, input_name)
    agreement = check.compare(expected, got)
    assert agreement.ok, f"{version} on {input_name}:\n{agreement.report}"


def test_oracle_is_not_trivial(oracle) -> None:
    """The random network must separate inputs, or agreeing with it would prove little."""
    a, b = oracle.logits(noise(0)), oracle.logits(noise(1))
    assert check.topk(a) != check.topk(b)
    assert abs(a).max() > 0.5


def test_bn_matters(state, oracle) -> None:
    """With BN statistics reset to identity the logits change completely: a skipped BN cannot pass."""
    from pyresnet.reference.oracle import Oracle

    plain = {k: v for k, v in state.items()}
    for k in state:
        if k.endswith("running_mean"):
            plain[k] = 0 * state[k]
        if k.endswith("running_var"):
            plain[k] = 0 * state[k] + 1
    x = noise(0)
    assert not check.compare(oracle.logits(x), Oracle(plain).logits(x)).ok
