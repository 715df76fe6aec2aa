"""Versions whose kernels come in several instruction sets (AVX2 and AVX-512, picked from CPUID at load):
every path the CPU can run agrees with the oracle, the AVX2 path can be forced on any CPU (pyresnet.load(...,
isa='avx2') or $PYRESNET_ISA), and a path the CPU lacks, or a name that is no path, is a clear error.

A version takes part when the registry says it has the "isa" feature; no test code is needed for a new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pyresnet
from pyresnet import registry
from pyresnet.reference import check
from pyresnet._peak import has_avx512
from pyresnet.machine import cpu_flags

from conftest import noise

MULTI_ISA = [v for v in pyresnet.versions() if registry.get(v).has("isa")]
EXACT = [v for v in MULTI_ISA if registry.get(v).precision == "fp32"]  # held to the oracle's 1e-3
pytestmark = pytest.mark.skipif(not MULTI_ISA, reason="no version with several instruction sets")
RUNNABLE = ["avx2"] + (["avx512"] if has_avx512() else [])


@pytest.mark.parametrize("isa", RUNNABLE)
@pytest.mark.parametrize("version", EXACT)
def test_forced_isa_matches_oracle(version: str, isa: str, weights_dir: Path, oracle) -> None:
    native = pyresnet.load(version, weights_dir, 2, isa=isa).native
    assert native.isa == isa
    x = noise(3)
    got = native.logits(x)
    verdict = check.compare(oracle.logits(x), got)
    assert verdict.ok, verdict


@pytest.mark.parametrize("version", MULTI_ISA)
def test_default_is_the_best_the_cpu_has(version: str, weights_of, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYRESNET_ISA", raising=False)
    m = pyresnet.load(version, weights=weights_of(version), threads=1)
    if registry.get(version).has("int8"):  # its paths are its int8 kernels' (avx512_vnni the best), listed by the module
        assert m.native.isa == registry.module(version).cpu_isas()[-1]
        return
    best = "avx512" if has_avx512() else "avx2"
    if registry.get(version).precision == "bf16" and "avx512_bf16" in cpu_flags():
        best = "avx512_bf16"  # a bf16 stage's vdpbf16ps path, where the CPU has it
    assert m.native.isa == best


@pytest.mark.parametrize("version", MULTI_ISA)
def test_env_forces_avx2(version: str, weights_of, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYRESNET_ISA", "avx2")
    m = pyresnet.load(version, weights=weights_of(version), threads=1)
    assert m.native.isa == "avx2"
    assert np.isfinite(m.logits(noise(1))).all()


@pytest.mark.parametrize("version", MULTI_ISA)
def test_unknown_or_missing_isa_is_a_value_error(version: str, weights_dir: Path) -> None:
    mod = registry.module(version)
    with pytest.raises(ValueError, match="isa must be"):
        mod.Model(str(weights_dir), 1, "sse2")
    if not has_avx512():
        with pytest.raises(ValueError, match="no AVX-512"):
            mod.Model(str(weights_dir), 1, "avx512")


@pytest.mark.parametrize("version", MULTI_ISA)
def test_a_path_of_another_stage_is_one_sentence(version: str, weights_of) -> None:
    """The isa names of the reduced-precision stages (model.ISAS) reach every stage; one that has no such path says
    which names it knows, as a UserError (one line on the command line), before anything runs."""
    own = {"bf16": "avx512_bf16", "int8": "avx512_vnni"}.get(registry.get(version).precision)
    for isa in {"avx512_bf16", "avx512_vnni"} - {own}:
        with pytest.raises(pyresnet.UserError, match=f"isa must be .*got '{isa}'"):
            pyresnet.load(version, weights=weights_of(version), threads=1, isa=isa)
