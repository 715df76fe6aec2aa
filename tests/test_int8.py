"""The int8 stage (registry feature "int8"): its conv kernel against an exact integer reference, on every
instruction-set path this CPU has; its dependence on the weights' calibration; and the whole network's agreement with
the fp32 torch oracle, next to ONNX Runtime's int8 network quantized from the same calibration images.

The kernel, `ops.conv_int8(x, weight, scale, bias, stride, pad, residual, res_scale, relu, out_scale, isa)`, sums
uint8 x int8 products in int32 (exact on every path: vpdpbusd, vpmaddwd on 16-bit widened values, or, in a stage with
the "weight_bits" feature, vpmaddubsw on 7-bit weights, which such a stage's paths without VNNI refuse to exceed), then
requantizes in a fixed order of float32 operations (FusedConv in ops/conv_fused.h). The reference below computes the
sums in int64 and repeats those float32 operations in numpy (an fma as an exact float64 product plus a float64 add,
rounded once to float32), so the outputs must be bitwise equal, and bitwise equal across the paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import pyresnet
from pyresnet import arch, registry
from pyresnet.errors import WeightsError

from conftest import calibration_images, noise, photos

INT8 = [v for v in pyresnet.versions() if registry.get(v).has("int8")]
pytestmark = pytest.mark.skipif(not INT8, reason="no int8 stage is built")
PATHS = ("avx2", "avx512", "avx512_vnni")


def runnable(version: str) -> list[str]:
    return list(registry.module(version).cpu_isas())


def weight_range(version: str, isa: str) -> tuple[int, int]:
    """The int8 weights `isa`'s kernels sum exactly: 7 bits on the vpmaddubsw paths of a "weight_bits" stage."""
    if registry.get(version).has("weight_bits") and isa != "avx512_vnni":
        return -64, 63
    return -128, 127


def isa_params() -> list:
    """(version, isa) for every path; the ones this CPU lacks are skipped, saying which."""
    out = []
    for v in INT8:
        have = runnable(v)
        for isa in PATHS:
            out.append(pytest.param(v, isa, id=f"{v}-{isa}", marks=pytest.mark.skipif(
                isa not in have, reason=f"this CPU cannot run the {isa} path (it runs {', '.join(have)})")))
    return out


# ------------------------------------------------------------------------------------------- the exact reference

def conv_sums(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """int64 sums of x (N, H, W, Cin) uint8 by w (Cout, K, K, Cin) int8: (N, Ho, Wo, Cout)."""
    n, h, wd, c = x.shape
    k = w.shape[1]
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, c), np.int64)
    xp[:, pad:pad + h, pad:pad + wd] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, ho, wo, w.shape[0]), np.int64)
    w64 = w.astype(np.int64)
    for kh in range(k):
        for kw in range(k):
            tap = xp[:, kh:kh + stride * (ho - 1) + 1:stride, kw:kw + stride * (wo - 1) + 1:stride]
            out += tap @ w64[:, kh, kw, :].T
    return out


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fma: the float64 product of two float32 values is exact; the sum is rounded to float32 once (a
    float64 rounding first can differ only when it lands exactly on a float32 midpoint, about 2^-29 of cases)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def reference(x, w, scale, bias, stride, pad, residual, res_scale, relu, out_scale):
    acc = conv_sums(x, w, stride, pad)
    r = fma32(acc.astype(np.float32), scale, bias)
    if residual is not None and residual.dtype == np.float32:
        r = (r + residual).astype(np.float32)
    elif residual is not None:
        r = fma32(residual.astype(np.float32), np.float32(res_scale), r)
    if relu:
        r = np.maximum(r, np.float32(0))
    if out_scale is None:
        return r
    inv = np.float32(1) / np.float32(out_scale)
    return np.rint(np.clip(r * inv, np.float32(0), np.float32(255))).astype(np.uint8)


# (n, h, w, cin, cout, k, stride, pad, residual, relu, out_scale): short tiles (1x1, 9x5, a batch of 3 5x5 images),
# input channels not a multiple of 4 (3, 13: the last quad of a kernel row padded with zero weights), stride 2,
# kernels 1, 3 and 7, residuals uint8 and fp32, ReLU on and off, uint8 and fp32 outputs
CASES = [
    (1, 7, 7, 64, 32, 1, 1, 0, None, True, 0.05),
    (1, 9, 5, 13, 64, 3, 1, 1, "u8", True, 0.08),
    (1, 9, 7, 64, 96, 3, 2, 1, "f32", True, 0.1),
    (1, 1, 1, 4, 32, 1, 1, 0, None, False, None),
    (1, 11, 9, 3, 32, 7, 2, 3, None, True, 0.2),
    (3, 5, 5, 68, 64, 1, 1, 0, "u8", False, None),
    (2, 6, 6, 128, 32, 3, 2, 1, None, True, None),
    (1, 4, 4, 256, 64, 1, 2, 0, "f32", False, None),
]


def make_case(case, seed=0, wrange=(-128, 127)):
    n, h, wd, cin, cout, k, stride, pad, res, relu, out_scale = case
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, h, wd, cin), dtype=np.uint8)
    w = rng.integers(wrange[0], wrange[1] + 1, (cout, k, k, cin), dtype=np.int8)
    # sums of k k cin products have a spread of about sqrt(k k cin) x 147 x 74: a scale that makes it about 1, so
    # that the uint8 outputs (steps of 0.05 to 0.2) span every value, rounding and clamping both exercised
    scale = (rng.uniform(0.5, 2.0, cout) / (np.sqrt(k * k * cin) * 11000)).astype(np.float32)
    bias = rng.uniform(-1, 1, cout).astype(np.float32)
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    residual = None
    if res == "u8":
        residual = rng.integers(0, 256, (n, ho, wo, cout), dtype=np.uint8)
    elif res == "f32":
        residual = rng.standard_normal((n, ho, wo, cout)).astype(np.float32)
    return x, w, scale, bias, stride, pad, residual, np.float32(0.004), relu, out_scale


def run_op(version, isa, x, w, scale, bias, stride, pad, residual, res_scale, relu, out_scale):
    return registry.module(version).conv_int8(x, w, scale, bias, stride, pad, residual, float(res_scale), relu,
                                              out_scale, isa)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:8])) + f"-{c[8]}-relu{int(c[9])}"
                         + ("-f32" if c[10] is None else "-u8"))
@pytest.mark.parametrize("version,isa", isa_params())
def test_conv_int8_matches_exact_reference(version: str, isa: str, case: tuple) -> None:
    args = make_case(case, wrange=weight_range(version, isa))
    expected = reference(*args)
    got = run_op(version, isa, *args)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if not np.array_equal(got, expected):
        bad = np.argwhere(got != expected)[:5]
        pytest.fail(f"{version} {isa} case {case}: {len(np.argwhere(got != expected))} values differ, first "
                    + ", ".join(f"{tuple(i)}: expected {expected[tuple(i)]}, got {got[tuple(i)]}" for i in bad))


@pytest.mark.parametrize("version", INT8)
def test_one_image_is_the_batch_of_one(version: str) -> None:
    x, w, scale, bias, stride, pad, _, rs, relu, out = make_case(CASES[1], wrange=weight_range(version, "avx2"))
    one = run_op(version, "avx2", x[0], w, scale, bias, stride, pad, None, rs, relu, out)
    assert np.array_equal(one, run_op(version, "avx2", x, w, scale, bias, stride, pad, None, rs, relu, out)[0])


@pytest.mark.parametrize("version", INT8)
def test_saturation_case_is_exact_on_every_path(version: str) -> None:
    """All-255 activations against the extreme weights each path takes: 127 and -128 (each pair of products
    2 x 255 x 127 = 64770 or -65280, past int16, where vpmaddubsw would saturate to 32767) on the vpdpbusd and
    widening vpmaddwd paths; 63 and -64 on the vpmaddubsw paths of 7-bit weights (pairs of 32130 and -32640, inside
    int16). The sums must be exact on every path."""
    cin, k = 64, 3
    x = np.full((1, 5, 5, cin), 255, np.uint8)
    one = np.ones(64, np.float32)
    zero = np.zeros(64, np.float32)
    for isa in runnable(version):
        lo, hi = weight_range(version, isa)
        w = np.empty((64, k, k, cin), np.int8)
        w[0::2] = hi
        w[1::2] = lo
        w[5, :, :, ::2] = hi  # one channel mixes the two
        expected = conv_sums(x, w, 1, 0)  # |sum| <= 255 x 128 x 576 < 2^24: exact in float32 too
        assert expected[0, 0, 0, 0] == 255 * hi * k * k * cin and expected[0, 0, 0, 1] == 255 * lo * k * k * cin
        got = run_op(version, isa, x, w, one, zero, 1, 0, None, 0, False, None)
        assert np.array_equal(got, expected.astype(np.float32)), isa
        # and through the uint8 store: clamped at 255 and 0
        u8 = run_op(version, isa, x, w, one, zero, 1, 0, None, 0, False, 1.0)
        assert (u8[..., 0] == 255).all() and (u8[..., 1] == 0).all(), isa


@pytest.mark.parametrize("version", [v for v in INT8 if registry.get(v).has("weight_bits")])
def test_vpmaddubsw_paths_refuse_weights_past_7_bits(version: str) -> None:
    """A weight vpmaddubsw could saturate on (64, or -65) is a ValueError on the paths without VNNI, never a wrong
    sum; the vpdpbusd path takes it."""
    x, w, scale, bias, stride, pad, _, rs, relu, out = make_case(CASES[0], wrange=(-64, 63))
    for bad in (64, -65, 127, -128):
        w2 = w.copy()
        w2[3, 0, 0, 17] = bad
        for isa in runnable(version):
            if isa == "avx512_vnni":
                got = run_op(version, isa, x, w2, scale, bias, stride, pad, None, rs, relu, None)
                assert np.array_equal(got, reference(x, w2, scale, bias, stride, pad, None, rs, relu, None))
            else:
                with pytest.raises(ValueError, match=f"weight {bad} is outside -64 .. 63"):
                    run_op(version, isa, x, w2, scale, bias, stride, pad, None, rs, relu, None)


@pytest.mark.parametrize("version", INT8)
def test_conv_int8_rejects_bad_arrays_and_isas(version: str) -> None:
    x, w, scale, bias, stride, pad, _, rs, relu, out = make_case(CASES[0])
    op = registry.module(version).conv_int8
    with pytest.raises(ValueError, match="uint8"):
        op(x.astype(np.float32), w, scale, bias)
    with pytest.raises(ValueError, match="int8"):
        op(x, w.astype(np.uint8), scale, bias)
    with pytest.raises(ValueError, match="scale"):
        op(x, w, scale[:-1], bias)
    with pytest.raises(ValueError, match="out_scale"):
        op(x, w, scale, bias, out_scale=0.0)
    with pytest.raises(ValueError, match="residual"):
        op(x, w, scale, bias, residual=np.zeros((1, 7, 7, 31), np.uint8))
    with pytest.raises(ValueError, match="multiple of the panel width"):
        op(x, w[:20], scale[:20], bias[:20], isa="avx2")
    with pytest.raises(ValueError, match="isa must be .*avx512_vnni"):
        op(x, w, scale, bias, isa="avx512_bf16")
    for isa in set(PATHS) - set(runnable(version)):
        with pytest.raises(ValueError, match="no AVX"):
            op(x, w, scale, bias, isa=isa)


# ------------------------------------------------------------------------------------ calibration dependence

@pytest.mark.parametrize("version", INT8)
def test_missing_calibration_is_one_sentence(version: str, weights_dir: Path) -> None:
    with pytest.raises(WeightsError, match="pyresnet calibrate") as e:
        pyresnet.load(version, weights=weights_dir)
    assert "\n" not in str(e.value)
    with pytest.raises(registry.module(version).WeightsError, match="pyresnet calibrate"):  # C++ checks too
        registry.module(version).Model(str(weights_dir), 1)


@pytest.mark.parametrize("version", INT8)
def test_stale_calibration_is_one_sentence(version: str, calibrated_dir: Path, tmp_path: Path) -> None:
    """Weights changed after `pyresnet calibrate`: the calibration describes other weights."""
    d = tmp_path / "w"
    shutil.copytree(calibrated_dir, d, copy_function=os.link)
    name = "layer3.1.conv2.weight"
    data = np.fromfile(d / f"{name}.bin", dtype="<f4") * np.float32(1.5)
    (d / f"{name}.bin").unlink()  # a new file, not a write through the link
    (d / f"{name}.bin").write_bytes(data.tobytes())
    m = json.loads((d / "manifest.json").read_text())
    m["tensors"][name]["sha256"] = hashlib.sha256(data.tobytes()).hexdigest()
    (d / "manifest.json").unlink()
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(WeightsError, match="stale.*pyresnet calibrate") as e:
        pyresnet.load(version, weights=d)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ the whole network

@pytest.mark.parametrize("version", INT8)
def test_every_path_thread_count_and_batch_gives_the_same_bits(version: str, calibrated_dir: Path) -> None:
    """Integer sums are exact and the requantization is the same float32 operations on every path, so the logits
    are bitwise the same for every instruction set, thread count and batch (for a "weight_bits" stage: with the same
    weight bits, 7 on every path, and 8 on the paths that take them)."""
    batch = np.stack([noise(60 + i) for i in range(3)])
    bits_options = [{"weight_bits": 7}, {"weight_bits": 8}] if registry.get(version).has("weight_bits") else [{}]
    for bits in bits_options:
        isas = [i for i in runnable(version) if bits.get("weight_bits") != 8 or weight_range(version, i)[1] == 127]
        if not isas:
            continue
        ref = pyresnet.load(version, weights=calibrated_dir, threads=1, isa=isas[0], max_batch=1, **bits)
        expected = np.stack([ref.logits(x) for x in batch])
        assert np.isfinite(expected).all() and np.abs(expected).max() > 0
        for isa in isas:
            for threads, max_batch in ((2, 2), (3, 8)):
                m = pyresnet.load(version, weights=calibrated_dir, threads=threads, isa=isa, max_batch=max_batch, **bits)
                assert m.native.isa == isa
                assert np.array_equal(m.logits(batch), expected), (isa, bits, threads, max_batch)


@pytest.mark.parametrize("version", [v for v in INT8 if registry.get(v).has("weight_bits")])
def test_weight_bits_defaults_and_refusals(version: str, calibrated_dir: Path) -> None:
    """8 bits by default where the path has VNNI, 7 elsewhere; 8 on a vpmaddubsw path, or any other count, is one
    sentence."""
    for isa in runnable(version):
        m = pyresnet.load(version, weights=calibrated_dir, threads=1, isa=isa)
        assert m.native.weight_bits == (8 if isa == "avx512_vnni" else 7)
        assert pyresnet.load(version, weights=calibrated_dir, threads=1, isa=isa, weight_bits=7).native.weight_bits == 7
    with pytest.raises(pyresnet.UserError, match="weight_bits=8 needs the avx512_vnni path"):
        pyresnet.load(version, weights=calibrated_dir, threads=1, isa="avx2", weight_bits=8)
    for bad in (6, 16, 7.5, "7", True):
        with pytest.raises(pyresnet.UserError, match="weight_bits must be 7 or 8"):
            pyresnet.load(version, weights=calibrated_dir, threads=1, weight_bits=bad)
    with pytest.raises(ValueError, match="weight_bits must be 7 or 8"):  # the C++ check, below the Python one
        registry.module(version).Model(str(calibrated_dir), 1, "avx2", 8, 9)


# Agreement bounds. Measured on the 8 held-out photos x 5 variants (40 inputs), random weights seed 0 calibrated on
# the first 3 photos (method max): the int8 stage top-1 0.975, top-5 overlap 0.995, relative max |dlogit| median 0.033, max
# 0.185; ONNX Runtime int8 (the same calibration images): 0.95, 0.95, 0.059, 0.60. The bounds leave room for
# another photo set; random weights give flat logits, so top-1 is the fragile one.
TOP5_MIN, TOP1_MIN, REL_MAX = 0.9, 0.85, 0.3
# 7-bit weights (the vpmaddubsw paths' default) have half the levels: on the same 40 inputs and calibration they agree
# about half as closely as 8-bit ones, next to ONNX Runtime int8 (the measured table: README.md of v16_int8_7bit).
# Their bounds: the same top-1 and top-5, a max of 0.45, and a median within 1.25x ONNX Runtime's.
REL_MAX_7BIT, ORT_MEDIAN_FACTOR_7BIT = 0.45, 1.25


AGREEMENT_CASES = [pytest.param(v, "default", id=v) for v in INT8] + [
    pytest.param(v, "avx2", id=f"{v}-7bit") for v in INT8 if registry.get(v).has("weight_bits")]


@pytest.mark.parametrize("version,isa", AGREEMENT_CASES)
def test_agreement_with_the_oracle_at_least_ort_int8(version: str, isa: str, calibrated_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage as a user runs it; for a "weight_bits" stage also on its AVX2 path, whose default is 7-bit weights."""
    from pyresnet.accuracy.agree import agree

    if isa != "default":
        monkeypatch.setenv("PYRESNET_ISA", isa)

    held_out = [p for p in photos() if p not in calibration_images(tmp_path)]
    if not held_out:
        pytest.skip("no photos to evaluate on (../shared/images)")
    ours = agree(version, "oracle", held_out, weights=str(calibrated_dir), threads=2, progress=False)
    try:
        import onnxruntime  # noqa: F401
        ort = agree("onnxruntime-int8", "oracle", held_out, weights=str(calibrated_dir), threads=2, progress=False)
    except ImportError:
        ort = None
    summary = {k: ours[k] for k in ("inputs", "top1", "top5_overlap", "rel_diff_median", "rel_diff_max")}
    if ort:
        summary["ort_int8"] = {k: ort[k] for k in ("top1", "top5_overlap", "rel_diff_median", "rel_diff_max")}
    print(f"\n{version} ({isa}) vs oracle: {summary}")
    assert ours["inputs"] == 5 * len(held_out) and not ours["skipped_calibration_images"]
    rel_max, factor = (REL_MAX, 1.1) if isa == "default" else (REL_MAX_7BIT, ORT_MEDIAN_FACTOR_7BIT)
    assert ours["top5_overlap"] >= TOP5_MIN and ours["top1"] >= TOP1_MIN and ours["rel_diff_max"] <= rel_max, summary
    if ort:
        assert ours["top5_overlap"] >= ort["top5_overlap"] - 0.02, summary
        assert ours["rel_diff_median"] <= ort["rel_diff_median"] * factor, summary


# ------------------------------------------------------------------------------------- the exact integer Winograd

WINO8 = [v for v in INT8 if registry.get(v).has("int8_winograd")]
# (n, h, w, cin, cout): layer1's shape; odd sizes (tiles cut by the border: 9 x 5, 7 x 7); a batch; 512 channels in
WINO_CASES = [(1, 56, 56, 64, 64), (1, 9, 5, 64, 128), (3, 7, 7, 128, 64), (1, 7, 7, 512, 64), (2, 14, 14, 256, 128)]


def wino_params() -> list:
    return [p for p in isa_params() if p.values[0] in WINO8]


@pytest.mark.parametrize("case", WINO_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("version,isa", wino_params())
def test_winograd_conv_is_the_direct_conv_bitwise(version: str, isa: str, case: tuple) -> None:
    """F(2x2, 3x3) in integers gives the direct conv's int32 sums exactly: with scale 1 and bias 0 the fp32 output
    is float32(S) itself (exact below 2^24), equal to the reference's sums; through the store (ReLU, uint8) and
    through the direct path, the same bits."""
    n, h, wd, cin, cout = case
    x, w, scale, bias, _, _, _, rs, _, out = make_case((n, h, wd, cin, cout, 3, 1, 1, None, True, 0.05),
                                                       wrange=weight_range(version, isa))
    op = registry.module(version).conv_int8
    one, zero = np.ones(cout, np.float32), np.zeros(cout, np.float32)
    sums = op(x, w, one, zero, 1, 1, None, 0.0, False, None, isa, True)
    assert np.array_equal(sums, conv_sums(x, w, 1, 1).astype(np.float32))
    expected = reference(x, w, scale, bias, 1, 1, None, rs, True, out)
    got = op(x, w, scale, bias, 1, 1, None, float(rs), True, out, isa, True)
    assert np.array_equal(got, expected), f"{len(np.argwhere(got != expected))} values differ"
    assert np.array_equal(got, op(x, w, scale, bias, 1, 1, None, float(rs), True, out, isa, False))


@pytest.mark.parametrize("version", WINO8)
def test_winograd_extremes_are_exact(version: str) -> None:
    """The largest transformed values: a checkerboard of 255 and 0 makes B^T d B reach +-510, weights at the path's
    extremes (127 and -128, or 63 and -64) make G2 g G2^T reach 9 x 128 in magnitude, and 512 channels the largest
    sums, where the output transform's int32 arithmetic wraps on the way (winograd.h): the sums must come out exact.
    Read through the fp32 output (scale 1, bias 0): float32(S), rounded the same way as the reference's above 2^24."""
    cin, cout = 512, 64
    board = np.zeros((1, 6, 6, cin), np.uint8)
    board[0, ::2, ::2] = 255
    board[0, 1::2, 1::2] = 255
    full = np.full((1, 6, 6, cin), 255, np.uint8)
    one, zero = np.ones(cout, np.float32), np.zeros(cout, np.float32)
    op = registry.module(version).conv_int8
    for isa in runnable(version):
        lo, hi = weight_range(version, isa)
        w = np.empty((cout, 3, 3, cin), np.int8)
        w[0::2] = hi
        w[1::2] = lo
        w[3, 1, 1] = hi  # filters with the centre tap of the other sign: transformed values of both signs
        w[4, 0] = hi
        for x in (board, full):
            expected = conv_sums(x, w, 1, 1)
            assert np.abs(expected).max() >= 255 * 64 * 4 * cin  # the corner pixels' 4 taps at least
            got = op(x, w, one, zero, 1, 1, None, 0.0, False, None, isa, True)
            assert np.array_equal(got, expected.astype(np.float32)), isa


@pytest.mark.parametrize("version", WINO8)
def test_winograd_refuses_what_it_cannot_run(version: str) -> None:
    x, w, scale, bias, _, _, _, rs, _, _ = make_case((1, 8, 8, 64, 64, 3, 1, 1, None, True, 0.05),
                                                     wrange=(-64, 63))
    op = registry.module(version).conv_int8
    with pytest.raises(ValueError, match="stride 1 and pad 1"):
        op(x, w, scale, bias, 2, 1, None, 0.0, True, 0.05, "avx2", True)
    with pytest.raises(ValueError, match="multiples of 64"):
        op(np.ascontiguousarray(x[..., :32]), np.ascontiguousarray(w[..., :32]), scale, bias, 1, 1, None, 0.0, True,
           0.05, "avx2", True)
    with pytest.raises(ValueError, match="adds no residual"):
        op(x, w, scale, bias, 1, 1, np.zeros((1, 8, 8, 64), np.uint8), 0.1, True, 0.05, "avx2", True)


@pytest.mark.parametrize("version", WINO8)
def test_winograd_on_and_off_give_the_same_logits_on_every_path(version: str, calibrated_dir: Path) -> None:
    """winograd=True (every 3x3 stride-1 conv), False (none) and the default (the layers the path runs faster so)
    give bitwise the same logits, on every path, for a batch and its images alone; the profile names the Winograd
    layers, so each setting is seen to run what it says."""
    batch = np.stack([noise(70 + i) for i in range(2)])
    for isa in runnable(version):
        results = {}
        for w in (True, False, None):
            m = pyresnet.load(version, weights=calibrated_dir, threads=2, isa=isa, max_batch=2, winograd=w)
            results[w] = m.logits(batch)
            wino_layers = sum("F(2x2)" in r[1] for r in m.native.profile(batch[0]))
            every = sum(c.kernel == 3 and c.stride == 1 for c in arch.convs())  # the 3x3 stride-1 convs
            assert wino_layers == {True: every, False: 0}.get(w, wino_layers), (isa, w, wino_layers)
            assert m.native.winograd == (wino_layers > 0)
            if w:
                assert np.array_equal(m.logits(batch[1]), results[w][1])
        assert np.array_equal(results[True], results[False]), isa
        assert np.array_equal(results[None], results[False]), isa
    with pytest.raises(pyresnet.UserError, match="winograd must be True or False"):
        pyresnet.load(version, weights=calibrated_dir, threads=1, winograd="yes")
