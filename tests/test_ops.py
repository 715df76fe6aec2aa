"""Each version's single ops against torch.nn.functional, on awkward shapes (channel counts 3, 13, 15; 9x7 images).

A version's module exposes the ops its network runs, on numpy arrays (HWC activations, OHWI conv weights): fc in
every stage, and what the registry's features say (pyresnet.registry.FEATURES): conv2d ("conv2d"), batchnorm, relu
and add ("bn_relu_add"), maxpool and avgpool ("pool"). A stage whose network stops calling an op drops its feature,
and its tests here follow. Every op checks its arguments: a wrong array is a ValueError, never a crash.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pyresnet

from pyresnet import registry

VERSIONS = pyresnet.versions()
CONV2D = [v for v in VERSIONS if registry.get(v).has("conv2d")]
BN_RELU_ADD = [v for v in VERSIONS if registry.get(v).has("bn_relu_add")]
POOL = [v for v in VERSIONS if registry.get(v).has("pool")]
rng = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def to_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(2, 0, 1)[None]


def from_nchw(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


def close(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


CONV_CASES = [  # (H, W, Cin, Cout, kernel, stride, pad)
    (23, 21, 3, 16, 7, 2, 3),  # the stem: 7x7/s2/p3 on 3 channels
    (9, 7, 13, 15, 1, 1, 0),  # 1x1 s1, channels not multiples of 8
    (9, 7, 16, 24, 1, 1, 0),  # 1x1 s1, multiples of 8
    (9, 7, 13, 8, 1, 2, 0),  # 1x1 s2 (downsample shortcut)
    (9, 7, 15, 13, 3, 1, 1),  # 3x3 s1 p1
    (10, 9, 13, 15, 3, 2, 1),  # 3x3 s2 p1, odd output
    (8, 8, 64, 64, 3, 1, 1),  # a real ResNet width
    (5, 5, 3, 5, 5, 1, 0),  # no padding, window = image
]


@pytest.mark.parametrize("version", CONV2D)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv2d(version: str, case: tuple) -> None:
    h, w, cin, cout, k, s, p = case
    x, wt = rand(h, w, cin), rand(cout, k, k, cin)
    ref = from_nchw(F.conv2d(to_nchw(x), torch.from_numpy(wt).permute(0, 3, 1, 2), stride=s, padding=p))
    close(pyresnet.ops(version).conv2d(x, wt, s, p), ref)


@pytest.mark.parametrize("version", POOL)
@pytest.mark.parametrize("shape", [(9, 7, 13), (12, 12, 64), (4, 4, 3)])
def test_maxpool(version: str, shape: tuple) -> None:
    x = rand(*shape)
    close(pyresnet.ops(version).maxpool(x, 3, 2, 1), from_nchw(F.max_pool2d(to_nchw(x), 3, 2, 1)))


@pytest.mark.parametrize("version", POOL)
@pytest.mark.parametrize("shape", [(7, 7, 2048), (9, 7, 13)])
def test_avgpool(version: str, shape: tuple) -> None:
    x = rand(*shape)
    close(pyresnet.ops(version).avgpool(x), F.adaptive_avg_pool2d(to_nchw(x), 1).flatten().numpy())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cin,cout", [(2048, 1000), (13, 15)])
def test_fc(version: str, cin: int, cout: int) -> None:
    x, w, b = rand(cin), rand(cout, cin), rand(cout)
    ref = F.linear(torch.from_numpy(x)[None], torch.from_numpy(w), torch.from_numpy(b))[0].numpy()
    close(pyresnet.ops(version).fc(x, w, b), ref)


@pytest.mark.parametrize("version", BN_RELU_ADD)
def test_add_relu(version: str) -> None:
    a, b = rand(9, 7, 13), rand(9, 7, 13)
    ops = pyresnet.ops(version)
    close(ops.add(a, b), (torch.from_numpy(a) + torch.from_numpy(b)).numpy())
    close(ops.relu(a), F.relu(torch.from_numpy(a)).numpy())


@pytest.mark.parametrize("version", BN_RELU_ADD)
@pytest.mark.parametrize("c", [13, 64])
def test_batchnorm(version: str, c: int) -> None:
    x = rand(9, 7, c)
    mean, gamma, beta = rand(c), rand(c), rand(c)
    var = rng.uniform(0.2, 3.0, c).astype(np.float32)
    ref = from_nchw(F.batch_norm(to_nchw(x), *(torch.from_numpy(a) for a in (mean, var, gamma, beta)),
                                 training=False, eps=1e-5))
    close(pyresnet.ops(version).batchnorm(x, mean, var, gamma, beta, 1e-5), ref)


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_arrays_raise_value_error(version: str) -> None:
    ops = pyresnet.ops(version)
    has = registry.get(version).has
    x, w = rand(9, 7, 13), rand(8, 3, 3, 13)
    bad_calls = [
        lambda: ops.fc(rand(13), rand(15, 12), rand(15)),
        lambda: ops.fc(rand(13), rand(15, 13), rand(14)),
        lambda: ops.fc(rand(13).astype(np.float64), rand(15, 13), rand(15)),
    ]
    if has("conv2d"):
        bad_calls += [
            lambda: ops.conv2d(x.astype(np.float64), w, 1, 1),  # dtype
            lambda: ops.conv2d(x[None], w, 1, 1),  # rank
            lambda: ops.conv2d(x[:, ::2], w, 1, 1),  # not contiguous
            lambda: ops.conv2d(x, rand(8, 3, 3, 12), 1, 1),  # channel mismatch
            lambda: ops.conv2d(x, rand(8, 3, 2, 13), 1, 1),  # not square
            lambda: ops.conv2d(x, w, 0, 1),  # stride 0
            lambda: ops.conv2d(rand(2, 2, 13), rand(8, 7, 7, 13), 1, 0),  # window larger than the image
        ]
    if has("pool"):
        bad_calls += [
            lambda: ops.maxpool(x, 3, 2, 3),  # pad >= kernel
            lambda: ops.maxpool(x[:, ::2], 3, 2, 1),  # not contiguous
            lambda: ops.avgpool(rand(13)),
        ]
    if has("bn_relu_add"):
        bad_calls += [
            lambda: ops.batchnorm(x, rand(12), rand(13), rand(13), rand(13)),
            lambda: ops.add(x, rand(9, 7, 12)),
            lambda: ops.relu(x.astype(np.int32)),
        ]
    for i, call in enumerate(bad_calls):
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"bad call {i} did not raise")


@pytest.mark.parametrize("version", [v for v in VERSIONS if registry.get(v).directory is not None])
def test_retired_ops_are_gone(version: str) -> None:
    """A stage carries only the ops its network runs: one that dropped a feature no longer has its ops."""
    ops = pyresnet.ops(version)
    has = registry.get(version).has
    for feature, names in (("conv2d", ["conv2d"]), ("bn_relu_add", ["batchnorm", "relu", "add"]),
                           ("pool", ["maxpool", "avgpool"]), ("fused_conv", ["conv_fused"]),
                           ("winograd", ["conv_winograd"])):
        for name in names:
            assert hasattr(ops, name) == has(feature), (version, name)


@pytest.mark.parametrize("version", VERSIONS)
def test_model_rejects_bad_input(version: str, models) -> None:
    m = models(version)
    for bad in (np.zeros((224, 224, 3)), np.zeros((3, 224, 224), np.float32), np.zeros((224, 224), np.float32),
                np.zeros((224, 448, 3), np.float32)[:, ::2], np.zeros((0, 224, 224, 3), np.float32),
                np.zeros((2, 224, 224, 3)), np.zeros((2, 224, 224, 4), np.float32)):
        with pytest.raises(ValueError):
            m.logits(bad)
