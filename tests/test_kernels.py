"""The fast conv kernels alone, as the network runs them, against torch.nn.functional.conv2d.

A version takes part by the registry's features: "fused_conv" (v8_gemm on, until a stage drops it: the int8 stage's
kernel is `conv_int8`, tests/test_int8.py) for `conv_fused(x, weight, bias, stride, pad, residual, relu[, isa])`,
which packs the weights into panels, zero-pads the input and runs every task of the layer, as the network does;
"winograd" (v11_winograd and v12_batch) for `conv_winograd(x, weight, bias, relu, tile[, isa])`, the weight
transform and the three Winograd passes. A version with the "isa" feature takes `isa=` here too and is tested
on every instruction set this CPU has; the AVX-512 cases are skipped, saying so, on a CPU without AVX-512.

The shapes reach every edge of the kernels: pixel counts that leave a short last tile of the micro-kernel (7x7, 9x5,
1x1, 1xN), input channel counts that are and are not multiples of the vector width (3, 13, 16, 64), output channel
counts of one or several panels and panel groups, stride 2, kernels 1, 3 and 7, residual with and without ReLU,
Winograd tiles cut by the border. The reference is computed in float64.

A version with the "batch" feature (v12_batch on) takes a batch (N, H, W, C) in both, its GEMM running over the pixels
of all N images: the batch cases put short tiles across the boundary between two images (3 images of 5x5 pixels,
2 images of 1x1) and make enough tiles for a large batch's extra pixel ranges; each image's output must be bitwise
what the op gives for that image alone.

Tolerance: max |got - ref| <= 1e-4 * max |ref| + 1e-5 for the direct kernel (fp32 sums of up to 7 * 7 * 64 terms);
5e-4 * max |ref| + 1e-5 for Winograd, whose transforms amplify rounding (F(4x4)'s constants most; seen: up to about
1e-5 * max |ref|).

A reduced-precision stage (registry precision 'bf16') computes its conv from bf16-rounded input, weights and
residual and rounds its output to bf16: its reference is computed from the same rounded inputs (the stage's own
to_bf16), and its tolerance is 2^-8 * max |ref| + 1e-5: rounding the output to bf16 moves a value by at most half
a unit in the last place, 2^-8 of the value. tests/test_bf16.py holds it to an element-by-element bound and runs its
avx512_bf16 path too. A bf16 stage's Winograd conv rounds its transformed input and weights to bf16 as well, so
its values are tested in tests/test_bf16.py against a reference that rounds the same way; here it meets the checks
on its arguments only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pyresnet
from pyresnet import registry
from pyresnet._peak import has_avx512

FUSED = [v for v in pyresnet.versions() if registry.get(v).has("fused_conv")]
WINOGRAD = [v for v in pyresnet.versions() if registry.get(v).has("winograd")]
WINOGRAD_FP32 = [v for v in WINOGRAD if registry.get(v).precision == "fp32"]  # the bf16 ones: tests/test_bf16.py
# the batch cases of conv_fused (and conv_winograd): the stages with both the "batch" feature and the op
BATCHED = [v for v in FUSED if registry.get(v).has("batch")]


def isa_params(versions: list[str]) -> list:
    """(version, isa) pairs: every instruction set of a multi-ISA version, None (the default) for the others."""
    out = []
    for v in versions:
        if not registry.get(v).has("isa"):
            out.append(pytest.param(v, None, id=v))
            continue
        out.append(pytest.param(v, "avx2", id=f"{v}-avx2"))
        out.append(pytest.param(v, "avx512", id=f"{v}-avx512", marks=pytest.mark.skipif(
            not has_avx512(), reason="this CPU has no AVX-512F: the AVX-512 kernels cannot run here")))
    return out


def isa_kw(isa: str | None) -> dict:
    return {} if isa is None else {"isa": isa}


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int, residual: np.ndarray | None,
              relu: bool) -> np.ndarray:
    """relu(conv2d(x, w) + b + residual) in float64, HWC in and out, OHWI weights."""
    xt = torch.from_numpy(x).double().permute(2, 0, 1)[None]
    wt = torch.from_numpy(w).double().permute(0, 3, 1, 2)
    y = F.conv2d(xt, wt, torch.from_numpy(b).double(), stride=stride, padding=pad)[0].permute(1, 2, 0)
    if residual is not None:
        y = y + torch.from_numpy(residual).double()
    if relu:
        y = torch.relu(y)
    return y.numpy()


def fused_reference(version: str, x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int,
                    residual: np.ndarray | None, relu: bool) -> np.ndarray:
    """reference() on the inputs as the version's conv_fused sees them: a bf16 stage rounds x, w and residual first."""
    if registry.get(version).precision == "bf16":
        rnd = pyresnet.ops(version).to_bf16
        x, w, residual = rnd(x), rnd(w), None if residual is None else rnd(residual)
    return reference(x, w, b, stride, pad, residual, relu)


def fused_tolerance(version: str) -> float:
    """rel for assert_close() on conv_fused: 1e-4 in fp32, 2^-8 for a stage whose output is bf16 (module docstring)."""
    return 2.0 ** -8 if registry.get(version).precision == "bf16" else 1e-4


def assert_close(got: np.ndarray, ref: np.ndarray, rel: float, case: str) -> None:
    assert got.shape == ref.shape and got.dtype == np.float32, (case, got.shape, ref.shape)
    err = np.abs(got.astype(np.float64) - ref)
    bound = rel * np.abs(ref).max() + 1e-5
    if err.max() > bound:
        idx = np.argwhere(err > bound)[:5]
        detail = ", ".join(f"{tuple(i)}: expected {ref[tuple(i)]:.6g}, got {got[tuple(i)]:.6g}" for i in idx)
        pytest.fail(f"{case}: max |diff| {err.max():.3g} > {bound:.3g}; first: {detail}")


FUSED_CASES = [  # (H, W, Cin, Cout, kernel, stride, pad, residual, relu)
    (7, 7, 16, 32, 1, 1, 0, False, True),  # 49 pixels: a short last tile of 6-pixel tiles
    (9, 5, 13, 64, 1, 1, 0, True, True),  # 45 pixels, 13 channels: residual + ReLU (conv3 of a block)
    (1, 1, 64, 32, 1, 1, 0, True, False),  # one pixel: a tile of one; residual without ReLU
    (1, 11, 64, 96, 1, 1, 0, False, False),  # 1 x N; 96 channels: several panels
    (9, 7, 13, 64, 1, 2, 0, False, False),  # 1x1 stride 2 (the downsample shortcut)
    (9, 7, 3, 32, 3, 1, 1, False, True),  # 3x3 on 3 channels
    (7, 7, 64, 96, 3, 1, 1, True, True),  # 3x3 s1, groups of panels (AVX2: 3 panels of 16 a group)
    (10, 9, 16, 64, 3, 2, 1, False, True),  # 3x3 stride 2, odd output
    (23, 21, 3, 64, 7, 2, 3, False, True),  # the stem: 7x7/s2/p3 on 3 channels
    (14, 14, 64, 64, 1, 1, 0, True, True),  # 196 pixels: several pixel ranges per panel group
    (5, 5, 13, 32, 5, 1, 0, False, False),  # no padding, window = image
]


@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: "x".join(map(str, c[:7])) + ("+res" if c[7] else "")
                         + ("+relu" if c[8] else ""))
@pytest.mark.parametrize("version,isa", isa_params(FUSED))
def test_conv_fused_matches_torch(version: str, isa: str | None, case: tuple) -> None:
    h, w, cin, cout, k, s, p, res, relu = case
    x, wt, b = rand(1, h, w, cin), rand(2, cout, k, k, cin), rand(3, cout)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    r = rand(4, ho, wo, cout) if res else None
    got = pyresnet.ops(version).conv_fused(x, wt, b, s, p, r, relu, **isa_kw(isa))
    assert_close(got, fused_reference(version, x, wt, b, s, p, r, relu), fused_tolerance(version),
                 f"{version} {isa} conv_fused {case}")


@pytest.mark.parametrize("version,isa", isa_params(FUSED))
def test_conv_fused_keyword_defaults(version: str, isa: str | None) -> None:
    """stride 1, pad 0, no residual and ReLU on, unless asked otherwise."""
    x, wt, b = rand(5, 6, 5, 16), rand(6, 32, 1, 1, 16), rand(7, 32)
    got = pyresnet.ops(version).conv_fused(x, wt, b, **isa_kw(isa))
    assert_close(got, fused_reference(version, x, wt, b, 1, 0, None, True), fused_tolerance(version),
                 f"{version} {isa} conv_fused defaults")


@pytest.mark.parametrize("version,isa", isa_params(FUSED))
def test_conv_fused_output_channels_not_a_panel_multiple(version: str, isa: str | None) -> None:
    """24 output channels is no multiple of any panel width (16 for AVX2, 32 for AVX-512): a ValueError naming it."""
    ops = pyresnet.ops(version)
    with pytest.raises(ValueError, match="24 output channels is not a multiple of the panel width"):
        ops.conv_fused(rand(0, 5, 5, 8), rand(1, 24, 1, 1, 8), rand(2, 24), **isa_kw(isa))
    if isa == "avx512":  # one AVX2 panel, half an AVX-512 one
        with pytest.raises(ValueError, match="16 output channels is not a multiple of the panel width, 32"):
            ops.conv_fused(rand(0, 5, 5, 8), rand(1, 16, 1, 1, 8), rand(2, 16), isa=isa)


@pytest.mark.parametrize("version", FUSED)
def test_conv_fused_rejects_bad_arrays(version: str) -> None:
    conv = pyresnet.ops(version).conv_fused
    x, wt, b = rand(0, 5, 5, 8), rand(1, 32, 3, 3, 8), rand(2, 32)
    # a rank the op does not take: 4 is a batch for the stages with the "batch" feature, so they get 5
    wrong_rank = x[None, :, :, None] if registry.get(version).has("batch") else x[:, :, None]
    bad = [
        ((x.astype(np.float64), wt, b), {}, "float32"),
        ((x, wt.astype(np.float16), b), {}, "float32"),
        ((np.asfortranarray(rand(0, 5, 5, 8)), wt, b), {}, "C-contiguous"),
        ((wrong_rank, wt, b), {}, "dimensions"),
        ((x, rand(1, 32, 3, 3, 7), b), {}, "input channels"),
        ((x, rand(1, 32, 3, 2, 8), b), {}, "square"),
        ((x, wt, rand(2, 16)), {}, "expected 32 values"),
        ((x, wt, b, 1, 1, rand(3, 4, 4, 32)), {}, "residual"),
        ((x, wt, b, 1, 1, rand(3, 5, 5, 32).astype(np.float64)), {}, "float32"),
        ((x, wt, b, 1, 3), {}, "pad"),  # pad >= kernel
        ((x, wt, b, 0, 1), {}, "stride"),
        ((rand(0, 2, 2, 8), rand(1, 32, 7, 7, 8), b), {}, "does not fit"),
    ]
    for args, kw, fragment in bad:
        with pytest.raises(ValueError, match=fragment):
            conv(*args, **kw)


@pytest.mark.parametrize("version", [v for v in FUSED if registry.get(v).has("isa")])
def test_conv_fused_isa_names(version: str) -> None:
    conv = pyresnet.ops(version).conv_fused
    x, wt, b = rand(0, 5, 5, 8), rand(1, 32, 1, 1, 8), rand(2, 32)
    with pytest.raises(ValueError, match="isa must be"):
        conv(x, wt, b, isa="sse2")
    if not has_avx512():
        with pytest.raises(ValueError, match="no AVX-512"):
            conv(x, wt, b, isa="avx512")


WINOGRAD_CASES = [  # (H, W, Cin, Cout, tile, relu): sizes that are and are not multiples of the tile
    (8, 8, 64, 64, 2, True),
    (7, 9, 64, 64, 2, False),  # border tiles cut on both sides
    (8, 12, 64, 128, 4, True),
    (13, 6, 128, 64, 4, False),  # 13 = 3 tiles of 4 + 1
    (1, 1, 64, 64, 4, True),  # one tile, almost all border
    (5, 3, 512, 64, 2, True),  # the widest input a Winograd layer takes
    (14, 14, 256, 256, 2, True),  # layer3's shape
    (28, 28, 128, 128, 4, True),  # layer2's shape
]


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-F{c[4]}"
                         + ("+relu" if c[5] else ""))
@pytest.mark.parametrize("version,isa", isa_params(WINOGRAD_FP32))
def test_conv_winograd_matches_torch(version: str, isa: str | None, case: tuple) -> None:
    h, w, cin, cout, m, relu = case
    x, wt, b = rand(11, h, w, cin), rand(12, cout, 3, 3, cin), rand(13, cout)
    got = pyresnet.ops(version).conv_winograd(x, wt, b, relu=relu, tile=m, **isa_kw(isa))
    assert_close(got, reference(x, wt, b, 1, 1, None, relu), 5e-4, f"{version} {isa} conv_winograd {case}")


@pytest.mark.parametrize("version", WINOGRAD)
def test_conv_winograd_rejects_what_it_cannot_run(version: str) -> None:
    conv = pyresnet.ops(version).conv_winograd
    x, wt, b = rand(0, 6, 6, 64), rand(1, 64, 3, 3, 64), rand(2, 64)
    bad = [
        ((x, rand(1, 64, 5, 5, 64), b), {}, "only 3x3"),
        ((x, wt, b), {"tile": 3}, "tile must be 2 or 4"),
        ((rand(0, 6, 6, 13), rand(1, 64, 3, 3, 13), b), {}, "multiples of 64"),  # 13 input channels
        ((x, rand(1, 96, 3, 3, 64), rand(2, 96)), {}, "multiples of 64"),  # 96 output channels
        ((rand(0, 3, 3, 576), rand(1, 64, 3, 3, 576), b), {}, "at most 512"),
        ((x.astype(np.float64), wt, b), {}, "float32"),
        ((x, rand(1, 64, 3, 3, 32), b), {}, "input channels"),
        ((x, wt, b[:32]), {}, "expected 64 values"),
        ((x, wt, b), {"isa": "neon"}, "isa must be"),
    ]
    for args, kw, fragment in bad:
        with pytest.raises(ValueError, match=fragment):
            conv(*args, **kw)


BATCH_FUSED_CASES = [  # (N, H, W, Cin, Cout, kernel, stride, pad, residual, relu)
    (3, 7, 7, 16, 32, 1, 1, 0, False, True),  # 147 pixels: AVX2's 6-pixel tiles straddle images
    (3, 5, 5, 13, 64, 1, 1, 0, True, True),  # 75 pixels: 7-pixel tiles straddle images, a short last one
    (2, 1, 1, 64, 32, 1, 1, 0, True, False),  # one short tile holding both images
    (3, 9, 7, 13, 64, 1, 2, 0, False, False),  # 1x1 stride 2
    (2, 9, 7, 3, 32, 3, 1, 1, False, True),  # 3x3: each image zero-padded on its own
    (3, 10, 9, 16, 64, 3, 2, 1, True, True),  # 3x3 stride 2 with residual
    (2, 23, 21, 3, 64, 7, 2, 3, False, True),  # the stem
    (3, 48, 50, 64, 64, 3, 1, 1, False, True),  # 7200 pixels: ranges reach the limit on their length
]


def _batch_id(c: tuple) -> str:
    return f"{c[0]}x" + "x".join(map(str, c[1:-2])) + ("+res" if c[-2] else "") + ("+relu" if c[-1] else "")


@pytest.mark.parametrize("case", BATCH_FUSED_CASES, ids=_batch_id)
@pytest.mark.parametrize("version,isa", isa_params(BATCHED))
def test_conv_fused_batch(version: str, isa: str | None, case: tuple) -> None:
    n, h, w, cin, cout, k, s, p, res, relu = case
    x, wt, b = rand(21, n, h, w, cin), rand(22, cout, k, k, cin), rand(23, cout)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    r = rand(24, n, ho, wo, cout) if res else None
    conv = pyresnet.ops(version).conv_fused
    got = conv(x, wt, b, s, p, r, relu, **isa_kw(isa))
    assert got.shape == (n, ho, wo, cout)
    for i in range(n):
        ri = None if r is None else r[i]
        assert_close(got[i], fused_reference(version, x[i], wt, b, s, p, ri, relu), fused_tolerance(version),
                     f"{version} {isa} conv_fused {case}, image {i}")
        alone = conv(x[i], wt, b, s, p, ri, relu, **isa_kw(isa))
        assert np.array_equal(got[i], alone), f"{version} {isa} conv_fused {case}: image {i} differs from it alone"


BATCH_WINOGRAD_CASES = [  # (N, H, W, Cin, Cout, tile, relu)
    (3, 7, 9, 64, 64, 2, False),  # 20 tiles an image: GEMM tiles straddle images; border tiles cut
    (2, 13, 6, 128, 64, 4, False),
    (2, 1, 1, 64, 64, 4, True),  # one Winograd tile an image, one GEMM tile for both
    (4, 28, 28, 64, 64, 2, True),  # 784 Winograd tiles in each GEMM
]


@pytest.mark.parametrize("case", BATCH_WINOGRAD_CASES, ids=lambda c: f"{c[0]}x" + "x".join(map(str, c[1:5]))
                         + f"-F{c[5]}" + ("+relu" if c[6] else ""))
@pytest.mark.parametrize("version,isa", isa_params([v for v in BATCHED if v in WINOGRAD_FP32]))
def test_conv_winograd_batch(version: str, isa: str | None, case: tuple) -> None:
    n, h, w, cin, cout, m, relu = case
    x, wt, b = rand(31, n, h, w, cin), rand(32, cout, 3, 3, cin), rand(33, cout)
    conv = pyresnet.ops(version).conv_winograd
    got = conv(x, wt, b, relu=relu, tile=m, **isa_kw(isa))
    assert got.shape == (n, h, w, cout)
    for i in range(n):
        assert_close(got[i], reference(x[i], wt, b, 1, 1, None, relu), 5e-4,
                     f"{version} {isa} conv_winograd {case}, image {i}")
        alone = conv(x[i], wt, b, relu=relu, tile=m, **isa_kw(isa))
        assert np.array_equal(got[i], alone), f"{version} {isa} conv_winograd {case}: image {i} differs from it alone"


@pytest.mark.parametrize("version", BATCHED)
def test_batch_kernels_reject_bad_arrays(version: str) -> None:
    ops = pyresnet.ops(version)
    x, wt, b = rand(0, 2, 5, 5, 64), rand(1, 64, 3, 3, 64), rand(2, 64)
    bad = [
        (ops.conv_fused, (x, wt, b, 1, 1, rand(3, 5, 5, 64)), "residual"),  # one image's residual for a batch
        (ops.conv_fused, (x, wt, b, 1, 1, rand(3, 3, 5, 5, 64)), "residual"),  # another N
        (ops.conv_fused, (x[0], wt, b, 1, 1, rand(3, 1, 5, 5, 64)), "residual"),  # a batch's residual for one image
        (ops.conv_fused, (rand(0, 0, 5, 5, 64), wt, b, 1, 1), "size 0"),
        (ops.conv_fused, (rand(0, 1, 2, 5, 5, 64), wt, b, 1, 1), "dimensions"),
    ]
    if registry.get(version).has("winograd"):  # a stage may drop Winograd (registry `drops`)
        bad += [
            (ops.conv_winograd, (rand(0, 0, 5, 5, 64), wt, b), "size 0"),
            (ops.conv_winograd, (rand(0, 1, 2, 5, 5, 64), wt, b), "dimensions"),
            (ops.conv_winograd, (np.asfortranarray(x), wt, b), "C-contiguous"),
        ]
    for fn, args, fragment in bad:
        with pytest.raises(ValueError, match=fragment):
            fn(*args)
