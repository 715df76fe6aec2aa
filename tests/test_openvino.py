"""The OpenVINO peers (instruments/peers.py): fp32 held to the oracle like every fp32 row, bf16 and NNCF int8 to a
plausible agreement with it; the precision each really compiled to, spawn, async throughput, the peer list, and
`pyresnet agree` with the int8 one.

Skipped where openvino (or, for int8, nncf) is not installed. The int8 peer is quantized once for the module, on the
calibration images of the calibrated test weights (the ones our int8 stage uses).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
pytest.importorskip("onnx", reason="onnx is not installed: the OpenVINO peers convert our ONNX graph")

from pyresnet import weights  # noqa: E402
from pyresnet.accuracy.agree import calibration_inputs, runner, statistics  # noqa: E402
from pyresnet.errors import UserError  # noqa: E402
from pyresnet.instruments import peers  # noqa: E402
from pyresnet.reference.check import compare  # noqa: E402

from conftest import noise, photos  # noqa: E402

NEEDS_NNCF = pytest.mark.skipif(importlib.util.find_spec("nncf") is None,
                                reason="nncf is not installed (pip install nncf)")
NEEDS_BF16 = pytest.mark.skipif(peers._ov_bf16() is not None, reason=str(peers._ov_bf16()))


@pytest.fixture(scope="module")
def fp32(state: dict) -> peers.OpenVinoPeer:
    return peers.OpenVinoPeer(state, 2)


@pytest.fixture(scope="module")
def int8(calibrated_dir: Path, state: dict) -> tuple[peers.OpenVinoInt8Peer, list[int]]:
    """The int8 peer, quantized on the test weights' calibration images; and how many items each pass over the
    calibration inputs took (it should make one pass, over every input)."""
    inputs = calibration_inputs(calibrated_dir, weights.read_manifest(calibrated_dir))

    class Counted:
        def __init__(self) -> None:
            self.passes: list[int] = []

        def __len__(self) -> int:
            return len(inputs)

        def __iter__(self):
            self.passes.append(0)
            for x in inputs:
                self.passes[-1] += 1
                yield x

    counted = Counted()
    return peers.OpenVinoInt8Peer(state, 2, counted), counted.passes


@pytest.fixture(scope="module")
def evaluation(oracle) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A few inputs that are not calibration images (photos after the first 3, else seeded noise) and the oracle's
    logits on them."""
    import pyresnet

    xs = [pyresnet.preprocess(p) for p in photos()[3:7]] or [noise(s) for s in range(4)]
    return xs, [oracle.logits(x) for x in xs]


def test_fp32_agrees_with_the_oracle(fp32: peers.OpenVinoPeer, oracle) -> None:
    x = noise(0)
    a = compare(oracle.logits(x), fp32.logits(x))
    assert a.ok, a.report
    xb = np.stack([noise(1), noise(2)])
    yb = fp32.logits(xb)
    assert yb.shape == (2, 1000)
    for i in range(2):
        a = compare(oracle.logits(xb[i]), yb[i])
        assert a.ok, a.report
    d = fp32.describe()
    assert (d["hint"], d["precision"], d["threads"], d["streams"]) == ("LATENCY", "f32", 2, 1)
    assert json.loads(json.dumps(d)) == d and d["version"].startswith("20")
    assert peers.get("openvino").label(d) == "openvino (LATENCY hint, f32)"


@NEEDS_BF16
def test_bf16_runs_in_bf16_and_agrees_plausibly(state: dict, evaluation) -> None:
    peer = peers.OpenVinoBf16Peer(state, 2)
    assert peer.describe()["precision"] == "bf16"
    xs, ref = evaluation
    s = statistics(ref, [peer.logits(x) for x in xs])
    assert s["top1"] >= 0.75 and s["top5_overlap"] >= 0.6, s
    assert 1e-3 < s["rel_diff_median"] and s["rel_diff_max"] < 0.3, s  # bf16 really ran, and not wildly off


@NEEDS_NNCF
def test_int8_is_quantized_once_over_its_calibration_and_agrees_plausibly(int8, evaluation) -> None:
    peer, passes = int8
    d = peer.describe()
    assert passes == [d["calibration_inputs"]] and d["calibration_inputs"] >= 1
    assert d["fake_quantize_nodes"] >= 53 and d["precision"] == "f32" and "PERFORMANCE" in d["quantization"]
    assert peers.get("openvino-int8").label(d) == "openvino-int8 (NNCF int8, LATENCY hint)"
    xs, ref = evaluation
    s = statistics(ref, [peer.logits(x) for x in xs])
    assert s["top1"] >= 0.5 and s["top5_overlap"] >= 0.6, s  # at least 3 of 5 on average
    assert 1e-3 < s["rel_diff_median"] and s["rel_diff_max"] < 0.5, s  # int8 really ran, and not wildly off
    assert peer.logits(np.stack(xs[:2])).shape == (2, 1000)


def test_spawn_is_an_independent_instance(fp32: peers.OpenVinoPeer) -> None:
    x = noise(3)
    y = fp32.logits(x)
    other = fp32.spawn(1)
    assert other.threads == 1 and other.request is not fp32.request and other.compiled is not fp32.compiled
    d = other.describe()
    assert d["threads"] == 1 and d["cpu_pinning"] is False  # pinned, two instances would share one core
    assert compare(y, other.logits(x)).ok
    assert fp32.threads == 2 and fp32.describe()["threads"] == 2
    np.testing.assert_array_equal(fp32.logits(x), y)


def test_async_throughput(fp32: peers.OpenVinoPeer) -> None:
    done, elapsed = fp32.async_throughput(noise(0), 0.3)
    assert done > 0 and elapsed >= 0.3
    t = fp32.describe()["throughput"]
    assert t["hint"] == "THROUGHPUT" and t["streams"] >= 1 and t["nireq"] >= 1 and t["threads"] == 2
    done, _ = fp32.async_throughput(np.stack([noise(0), noise(1)]), 0.0)  # a batch: its images one at a time
    assert done >= 1


@NEEDS_NNCF
def test_int8_async_throughput(int8) -> None:
    peer, _ = int8
    done, elapsed = peer.async_throughput(noise(0), 0.2)
    assert done > 0 and elapsed >= 0.2 and peer.describe()["throughput"]["nireq"] >= 1


def test_the_peers_are_listed() -> None:
    names = [s.name for s in peers.installed()]
    assert "openvino" in names and peers.get("openvino").precision == "fp32"
    assert ("openvino-bf16" in names) == (peers._ov_bf16() is None) and peers.get("openvino-bf16").precision == "bf16"
    assert ("openvino-int8" in names) == (importlib.util.find_spec("nncf") is not None)
    assert peers.get("openvino-int8").precision == "int8" and "nncf" in peers.get("openvino-int8").packages
    assert all(peers.get(n).available() is None for n in ("pytorch", "onnxruntime", "openvino"))


def test_a_peer_this_cpu_cannot_run(state: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """available() saying why: left out of installed(), and make() is one sentence, before anything is built."""
    spec = dataclasses.replace(peers.get("openvino-bf16"), available=lambda: "no bf16 here",
                               make=lambda i: pytest.fail("made anyway"))
    monkeypatch.setattr(peers, "PEERS", tuple(spec if s.name == spec.name else s for s in peers.PEERS))
    assert "openvino-bf16" not in [s.name for s in peers.installed()]
    assert "openvino" in [s.name for s in peers.installed()]
    with pytest.raises(UserError, match="'openvino-bf16' cannot run here: no bf16 here"):
        peers.make(spec, peers.PeerInputs(state, 1))


@pytest.mark.parametrize("peer,blocked", [("openvino", "openvino"), ("openvino-int8", "nncf")])
def test_a_missing_package_is_one_sentence(peer: str, blocked: str, calibrated_dir: Path, state: dict,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)  # `import blocked` now raises ImportError
    with pytest.raises(UserError, match=f"'{peer}' needs the {blocked} package.*pip install {blocked}$"):
        runner(peer, calibrated_dir, state, weights.read_manifest(calibrated_dir), 1)


@NEEDS_NNCF
def test_agree_with_the_int8_peer(calibrated_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import cv2

    from pyresnet import cli

    pics = []
    for i in range(2):
        yy, xx = np.mgrid[0:150, 0:200]
        pics.append(tmp_path / f"eval{i}.png")
        cv2.imwrite(str(pics[-1]), np.stack([(xx * (i + 3)) % 256, (yy * (i + 1)) % 256, (xx * yy) % 256],
                                            -1).astype(np.uint8))
    assert cli.main(["agree", "--version", "openvino-int8", "--weights", str(calibrated_dir), "--json",
                     "--no-variants", "--threads", "2", *map(str, pics)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"] == "openvino-int8" and out["b"] == "oracle" and out["inputs"] == 2
    assert 0 <= out["top1"] <= 1 and 0 <= out["top5_overlap"] <= 1 and out["rel_diff_max"] > 1e-3
