"""The bf16 stages' conv kernel alone, and their rounding, against numpy references with the same rounding.

A version takes part when the registry says its precision is 'bf16'. Its `conv_fused(x, weight, bias, stride, pad,
residual, relu, isa)` takes float32 arrays but computes as the network does: x, weight and residual rounded to bf16
(nearest, ties to even), products summed in fp32, bias (fp32), residual and ReLU added in fp32, the output rounded
to bf16. The reference here does the same in float64 from the same bf16-rounded inputs, so the only differences
left are the order and precision of the fp32 sums and the final rounding to bf16:

    |got - ref| <= 2^-8 |ref| + 2e-5 max |ref|  (element by element)

2^-8 |ref| is the most that rounding to bf16 can move a value (half a unit in the last place: bf16 keeps 8
significant bits, so half an ulp is at most 2^-8 of the value, reached just above a power of two; measured 0.0038
|ref| at most, against 2^-8 = 0.0039); 2e-5 of the largest output covers the fp32 summation of up to 7 * 7 * 64
terms, which may land the sum on the other side of a rounding boundary. An error in indexing, packing or pairing
misses by orders of magnitude more.

A bf16 stage with the "winograd" feature has `conv_winograd(x, weight, bias, relu, tile, isa)` too, computed as its
network computes it: x rounded to bf16, the input transform B^T d B in fp32 and each transformed value rounded to
bf16, the weights transformed in double (G g G^T) and each rounded to bf16, the products summed in fp32 and kept in
fp32 through the output transform A^T M A, bias and ReLU, the output rounded to bf16. Its reference does the same
in float64 (matrices written out here, independently of the C++ ones) and is held to the same bound; measured: the
largest excess over 2^-8 |ref| was 3e-7 of max |ref|, 70 times below the 2e-5 allowed. A wrong transform matrix,
tile index or pairing misses by orders of magnitude. And the Winograd conv must stay near the exact conv of the same
bf16 input and weights: root-mean-square difference at most 1% of the exact output's for F(2x2), 5% for F(4x4),
whose larger constants amplify the roundings of V and U (measured on these normal inputs: 0.41-0.59% and
2.2-2.6%; a direct bf16 conv's is about 0.2%). That cost is why the network runs F(4x4) on layer2 only (README.md
of the stage).

Every instruction set the CPU has is run ('avx2' and 'avx512' widen bf16 to fp32 and use FMA, 'avx512_bf16' uses
vdpbf16ps); the others are skipped, saying which CPU feature is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyresnet
from pyresnet import registry
from pyresnet.machine import cpu_flags

BF16 = [v for v in pyresnet.versions() if registry.get(v).precision == "bf16"]
pytestmark = pytest.mark.skipif(not BF16, reason="no bf16 stage built")
FLAGS = cpu_flags()
ISAS = [("avx2", "avx2"), ("avx512", "avx512f"), ("avx512_bf16", "avx512_bf16")]  # (isa, /proc/cpuinfo flag)


def params() -> list:
    out = []
    for v in BF16:
        for isa, flag in ISAS:
            out.append(pytest.param(v, isa, id=f"{v}-{isa}", marks=pytest.mark.skipif(
                flag not in FLAGS, reason=f"this CPU has no {flag}: the '{isa}' kernels cannot run here")))
    return out


def bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bf16 (nearest, ties to even) in numpy, as float32; NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    out = r.view(np.float32).copy()
    out[np.isnan(x)] = np.nan
    return out


def reference(x, w, b, stride, pad, residual, relu) -> np.ndarray:
    """relu(conv(bf16(x), bf16(w)) + b + bf16(residual)) in float64, HWC in and out, OHWI weights; a leading N."""
    xb, wb = bf16(x).astype(np.float64), bf16(w).astype(np.float64)
    n, h, wd, c = xb.shape
    cout, k = wb.shape[0], wb.shape[1]
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, c))
    xp[:, pad:pad + h, pad:pad + wd] = xb
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((n, ho, wo, cout))
    for kh in range(k):
        for kw in range(k):
            patch = xp[:, kh:kh + stride * (ho - 1) + 1:stride, kw:kw + stride * (wo - 1) + 1:stride]
            y += patch @ wb[:, kh, kw, :].T
    y += b.astype(np.float64)
    if residual is not None:
        y += bf16(residual).astype(np.float64)
    return np.maximum(y, 0) if relu else y


def assert_bf16_close(got: np.ndarray, ref: np.ndarray, case: str) -> None:
    assert got.shape == ref.shape and got.dtype == np.float32, (case, got.shape, ref.shape)
    assert np.array_equal(got, bf16(got)), f"{case}: the output is not bf16 values"
    err = np.abs(got.astype(np.float64) - ref)
    bound = 2.0 ** -8 * np.abs(ref) + 2e-5 * np.abs(ref).max()
    if (err > bound).any():
        idx = np.argwhere(err > bound)[:5]
        detail = ", ".join(f"{tuple(i)}: expected {ref[tuple(i)]:.6g}, got {got[tuple(i)]:.6g}" for i in idx)
        pytest.fail(f"{case}: {int((err > bound).sum())} values off; first: {detail}")


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CASES = [  # (N, H, W, Cin, Cout, kernel, stride, pad, residual, relu)
    (1, 7, 7, 16, 32, 1, 1, 0, False, True),  # 49 pixels: AVX2's 6-pixel tiles leave a short last one
    (1, 9, 5, 13, 64, 1, 1, 0, True, True),  # 13 input channels: an odd run, its zero tap reads the next pixel
    (1, 1, 1, 64, 32, 1, 1, 0, True, False),  # a tile of one pixel; residual without ReLU
    (1, 1, 11, 64, 96, 1, 1, 0, False, False),  # 96 channels: several panels (AVX2) / a short one refused below
    (1, 9, 7, 13, 64, 1, 2, 0, False, False),  # 1x1 stride 2 (the downsample shortcut)
    (1, 9, 7, 3, 32, 3, 1, 1, False, True),  # 3x3 on 3 channels: pairs straddle pixels of a row
    (1, 7, 7, 64, 96, 3, 1, 1, True, True),  # 3x3 s1 with residual
    (1, 10, 9, 16, 64, 3, 2, 1, False, True),  # 3x3 stride 2, odd output
    (1, 23, 21, 3, 64, 7, 2, 3, False, True),  # the stem: 7x7/s2/p3 on 3 channels
    (1, 14, 14, 64, 64, 1, 1, 0, True, True),  # several pixel ranges per panel group
    (1, 5, 5, 13, 32, 5, 1, 0, False, False),  # no padding, window = image, odd rows of 65 taps
    (3, 5, 5, 13, 64, 1, 1, 0, True, True),  # a batch: 7-pixel tiles straddle images
    (2, 9, 7, 3, 32, 3, 1, 1, False, True),  # a batch of padded 3x3 inputs
    (2, 23, 21, 3, 64, 7, 2, 3, False, True),  # a batch through the stem
]


def _id(c: tuple) -> str:
    return f"{c[0]}x" + "x".join(map(str, c[1:8])) + ("+res" if c[8] else "") + ("+relu" if c[9] else "")


@pytest.mark.parametrize("case", CASES, ids=_id)
@pytest.mark.parametrize("version,isa", params())
def test_conv_fused_bf16(version: str, isa: str, case: tuple) -> None:
    n, h, w, cin, cout, k, s, p, res, relu = case
    nb = 16 if isa == "avx2" else 32
    if cout % nb:
        pytest.skip(f"{cout} output channels is no multiple of the '{isa}' panel ({nb}); refusal tested below")
    x, wt, b = rand(1, n, h, w, cin), rand(2, cout, k, k, cin), rand(3, cout)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    r = rand(4, n, ho, wo, cout) if res else None
    conv = pyresnet.ops(version).conv_fused
    got = conv(x, wt, b, s, p, r, relu, isa=isa)
    assert got.shape == (n, ho, wo, cout)
    assert_bf16_close(got, reference(x, wt, b, s, p, r, relu), f"{version} {isa} conv_fused {case}")
    for i in range(n):  # each image of a batch bitwise what it gives alone
        alone = conv(x[i], wt, b, s, p, None if r is None else r[i], relu, isa=isa)
        assert np.array_equal(got[i], alone), f"{version} {isa} {case}: image {i} differs from it alone"


@pytest.mark.parametrize("version,isa", params())
def test_conv_fused_bf16_refuses_a_partial_panel(version: str, isa: str) -> None:
    nb = 16 if isa == "avx2" else 32
    with pytest.raises(ValueError, match=f"24 output channels is not a multiple of the panel width, {nb}"):
        pyresnet.ops(version).conv_fused(rand(0, 5, 5, 8), rand(1, 24, 1, 1, 8), rand(2, 24), isa=isa)


# bf16 Winograd: F(m x m, 3 x 3) transforms (Lavin & Gray 2016), written out again here rather than read from the
# C++, so that a wrong constant there cannot be copied into the reference.
WINO_BT = {2: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
           4: [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]}
WINO_G = {2: [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
          4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]}
WINO_AT = {2: [[1, 1, 1, 0], [0, 1, -1, -1]],
           4: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]}
WINOGRAD = [v for v in BF16 if registry.get(v).has("winograd")]


def wino_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, m: int, relu: bool, round_v: bool = True) -> np.ndarray:
    """The bf16 Winograd conv (stride 1, pad 1) in float64, rounding where the stage rounds: x, then each value of V
    = B^T d B (unless round_v is False) and of U = G g G^T (via float32, as the kernels hold them) to bf16; M,
    A^T M A and the bias exact."""
    bt, g, at = (np.array(t[m], dtype=np.float64) for t in (WINO_BT, WINO_G, WINO_AT))
    xb = bf16(x).astype(np.float64)
    n, h, wd, c = xb.shape
    a, th, tw = m + 2, -(-h // m), -(-wd // m)
    xp = np.zeros((n, th * m + 2, tw * m + 2, c))
    xp[:, 1:h + 1, 1:wd + 1] = xb
    u = bf16(np.einsum("ik,oklc,jl->ijco", g, w.astype(np.float64), g).astype(np.float32)).astype(np.float64)
    y = np.zeros((n, th * m, tw * m, w.shape[0]))
    for ty in range(th):
        for tx in range(tw):
            d = xp[:, ty * m:ty * m + a, tx * m:tx * m + a]
            v = np.einsum("ik,nklc,jl->nijc", bt, d, bt)
            if round_v:
                v = bf16(v.astype(np.float32)).astype(np.float64)
            y[:, ty * m:ty * m + m, tx * m:tx * m + m] = np.einsum("ik,nklo,jl->nijo", at,
                                                                  np.einsum("nijc,ijco->nijo", v, u), at)
    y = y[:, :h, :wd] + b.astype(np.float64)
    return np.maximum(y, 0) if relu else y


WINO_CASES = [  # (N, H, W, Cin, Cout, tile, relu): tiles cut by the border, one tile, the widest input, batches
    (1, 8, 8, 64, 64, 2, True),
    (1, 7, 9, 64, 64, 2, False),
    (1, 8, 12, 64, 128, 4, True),
    (1, 13, 6, 128, 64, 4, False),
    (1, 1, 1, 64, 64, 4, True),
    (1, 5, 3, 512, 64, 2, True),
    (1, 14, 14, 256, 256, 2, True),  # layer3's shape
    (1, 28, 28, 128, 128, 4, True),  # layer2's shape
    (3, 7, 9, 64, 64, 2, False),  # GEMM tiles straddle images
    (2, 1, 1, 64, 64, 4, True),  # one Winograd tile an image
]


def wino_params() -> list:
    return [p for p in params() if p.values[0] in WINOGRAD]


@pytest.mark.parametrize("case", WINO_CASES, ids=lambda c: f"{c[0]}x" + "x".join(map(str, c[1:5])) + f"-F{c[5]}"
                         + ("+relu" if c[6] else ""))
@pytest.mark.parametrize("version,isa", wino_params())
def test_conv_winograd_bf16(version: str, isa: str, case: tuple) -> None:
    n, h, w, cin, cout, m, relu = case
    x, wt, b = rand(11, n, h, w, cin), rand(12, cout, 3, 3, cin), rand(13, cout)
    conv = pyresnet.ops(version).conv_winograd
    got = conv(x, wt, b, relu=relu, tile=m, isa=isa)
    assert got.shape == (n, h, w, cout)
    assert_bf16_close(got, wino_reference(x, wt, b, m, relu), f"{version} {isa} conv_winograd {case}")
    exact = reference(x, wt, b, 1, 1, None, relu)  # the conv of the bf16 input and weights, no transform
    rms = np.sqrt(np.mean((got - exact) ** 2) / np.mean(exact ** 2))
    assert rms <= (0.01 if m == 2 else 0.05), f"{version} {isa} {case}: {rms:.3g} of the exact conv's RMS away"
    for i in range(n):  # each image of a batch bitwise what it gives alone
        alone = conv(x[i], wt, b, relu=relu, tile=m, isa=isa)
        assert np.array_equal(got[i], alone), f"{version} {isa} {case}: image {i} differs from it alone"


@pytest.mark.parametrize("version", WINOGRAD)
def test_winograd_reference_is_sharp(version: str) -> None:
    """The reference is tight enough to see one rounding missed: without V's rounding to bf16 it misses the stage's
    output by more than the bound allows."""
    x, wt, b = rand(11, 1, 28, 28, 128), rand(12, 128, 3, 3, 128), rand(13, 128)
    got = pyresnet.ops(version).conv_winograd(x, wt, b, relu=False, tile=4)
    assert_bf16_close(got, wino_reference(x, wt, b, 4, False), "the reference")
    with pytest.raises(pytest.fail.Exception):
        assert_bf16_close(got, wino_reference(x, wt, b, 4, False, round_v=False), "V unrounded")


@pytest.mark.parametrize("version", BF16)
def test_paths_agree(version: str) -> None:
    """The emulated AVX-512 path and vdpbf16ps add the same exact products in the same order (odd, then even tap of
    each pair): on inputs without denormals (which vdpbf16ps flushes to zero) their outputs are bitwise equal. The
    AVX2 path has other panels (16 channels), so the same sums, but it is held only to the reference above."""
    have = [isa for isa, flag in ISAS[1:] if flag in FLAGS]
    if len(have) < 2:
        pytest.skip("needs both avx512f and avx512_bf16 on this CPU")
    x, wt, b = rand(5, 2, 12, 12, 64), rand(6, 64, 3, 3, 64), rand(7, 64)
    r = rand(8, 2, 12, 12, 64)
    conv = pyresnet.ops(version).conv_fused
    got = [conv(x, wt, b, 1, 1, r, True, isa=isa) for isa in have]
    assert np.array_equal(got[0], got[1])


@pytest.mark.parametrize("version", BF16)
def test_to_bf16_rounds_to_nearest_even(version: str) -> None:
    to_bf16 = pyresnet.ops(version).to_bf16
    one = 1.0
    ulp = 2.0 ** -7  # bf16's unit in the last place at 1.0
    cases = {
        one: one,
        one + ulp / 2: one,  # a tie: 1.0 is even
        one + 3 * ulp / 2: one + 2 * ulp,  # a tie: 1 + 2 ulp is even
        one + ulp / 2 + 2 ** -20: one + ulp,  # just above the tie
        one + ulp / 2 - 2 ** -20: one,  # just below it
        -(one + ulp / 2): -one,
        3.4028235e38: np.inf,  # float32 max rounds up past bf16's largest finite value
        np.inf: np.inf,
        -np.inf: -np.inf,
        0.0: 0.0,
    }
    x = np.array(list(cases), dtype=np.float32)
    got = to_bf16(x)
    for xi, want, g in zip(x, cases.values(), got):
        assert g == np.float32(want), (float(xi), float(g), float(want))
    denormals = np.array([1e-40, -3e-39, 1.1754942e-38], np.float32)  # rounded by the same rule, not flushed
    assert np.array_equal(to_bf16(denormals), bf16(denormals)) and (to_bf16(denormals) != 0).all()
    nan = to_bf16(np.array([np.nan, -np.nan, np.uint32(0x7FFFFFFF).view(np.float32)], np.float32))
    assert np.isnan(nan).all()  # a NaN never rounds into an infinity or a zero
    big = rand(9, 4096) * 1e3
    assert np.array_equal(to_bf16(big), bf16(big))
    assert to_bf16(rand(9, 2, 3, 4)).shape == (2, 3, 4)
