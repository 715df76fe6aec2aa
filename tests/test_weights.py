"""The weights format and its tooling: random determinism, import round trip, offline fetch, every corruption."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pyresnet
from pyresnet import arch, registry, weights
from pyresnet.errors import WeightsError

from conftest import assert_one_line_error, noise, run_cli


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_random_is_deterministic(weights_dir: Path, tmp_path: Path) -> None:
    again = weights.random(0, out=tmp_path / "again")
    other = weights.random(1, out=tmp_path / "other")
    assert _digest(again) == _digest(weights_dir)
    assert _digest(other) != _digest(weights_dir)


def test_random_bn_is_not_identity(state: dict) -> None:
    for c in arch.convs():
        assert np.abs(state[f"{c.bn}.running_mean"]).max() > 0.01, c.bn
        assert np.abs(state[f"{c.bn}.running_var"] - 1).max() > 0.01, c.bn
        assert np.abs(state[f"{c.bn}.weight"] - 1).max() > 0.01, c.bn
        assert np.abs(state[f"{c.bn}.bias"]).max() > 0.01, c.bn


def test_manifest_lists_every_tensor(weights_dir: Path) -> None:
    m = json.loads((weights_dir / "manifest.json").read_text())
    assert m["format"] == weights.FORMAT and m["source"] == "random" and m["seed"] == 0
    assert set(m["tensors"]) == set(arch.state_shapes())
    e = m["tensors"]["conv1.weight"]
    assert e["shape"] == [64, 7, 7, 3] and e["layout"] == "OHWI" and e["file"] == "conv1.weight.bin"


def _torch_state_dict(state: dict) -> dict:
    sd = {k: torch.from_numpy(np.array(v)) for k, v in weights.to_torchvision(state).items()}
    for c in arch.convs():  # torchvision state_dicts carry these too; import must skip them
        sd[f"{c.bn}.num_batches_tracked"] = torch.tensor(0)
    return sd


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_import_round_trip(state: dict, tmp_path: Path, legacy: bool) -> None:
    pth = tmp_path / "resnet50-test.pth"
    torch.save(_torch_state_dict(state), pth, _use_new_zipfile_serialization=not legacy)
    r = run_cli("weights", "import", str(pth), "--out", str(tmp_path / "imported"))
    assert r.returncode == 0, r.stderr
    got, manifest = weights.check(tmp_path / "imported")
    assert manifest["source"] == "import"
    for k, v in state.items():
        assert np.array_equal(got[k], v), k


def test_import_rejects_wrong_files(state: dict, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    assert_one_line_error(run_cli("weights", "import", str(junk), "--out", str(tmp_path / "o")), "junk.pth")
    assert_one_line_error(run_cli("weights", "import", str(tmp_path / "absent.pth")), "absent.pth")
    sd = _torch_state_dict(state)
    del sd["layer3.2.conv2.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    assert_one_line_error(run_cli("weights", "import", str(tmp_path / "partial.pth"), "--out", str(tmp_path / "o")),
                          "layer3.2.conv2.weight")


def test_fetch_offline_says_what_to_do(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: connection refused, whatever network this machine has.
    env = {weights.ENV_URL: "http://127.0.0.1:9/resnet50-0676ba61.pth"}
    r = run_cli("weights", "fetch", "--out", str(tmp_path / "w"), env=env)
    assert_one_line_error(r, "could not download", "weights import", "weights random")
    assert not (tmp_path / "w" / "manifest.json").exists()


def test_run_without_weights_fetches_then_explains(tmp_path: Path) -> None:
    env = {weights.ENV_URL: "http://127.0.0.1:9/resnet50-0676ba61.pth", weights.ENV_ROOT: str(tmp_path / "root"),
           weights.ENV_WEIGHTS: ""}
    img = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    r = run_cli("run", "--version", "py", str(img), env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "no weights found" in last and "weights fetch" in last and "weights random" in last


def test_fetch_checks_hash_and_converts(state: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pth = tmp_path / "mirror.pth"
    torch.save(_torch_state_dict(state), pth)
    monkeypatch.setenv(weights.ENV_URL, pth.as_uri())
    with pytest.raises(WeightsError, match="sha256"):  # the real checkpoint's hash prefix does not match
        weights.fetch("v1", tmp_path / "bad", progress=False)
    prefix = hashlib.sha256(pth.read_bytes()).hexdigest()[:8]
    v = weights.VARIANTS["v1"]
    monkeypatch.setitem(weights.VARIANTS, "v1", weights.Variant(v.name, v.url, prefix, v.resize, v.note))
    out = weights.fetch("v1", tmp_path / "good", progress=False)
    got, manifest = weights.check(out)
    assert manifest["source"] == "imagenet1k_v1" and all(np.array_equal(got[k], state[k]) for k in state)


# ------------------------------------------------------------------------------------------- corruption cases

def _corrupt_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=os.link)  # hard links: cheap; we replace, never edit, a linked file
    return dst


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _edit_manifest(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    _replace(d / "manifest.json", json.dumps(m).encode())


CORRUPTIONS = {
    "missing file": lambda d: (d / "layer2.1.conv2.weight.bin").unlink(),
    "truncated file": lambda d: _replace(d / "layer2.1.conv2.weight.bin",
                                         (d / "layer2.1.conv2.weight.bin").read_bytes()[:-8]),
    "checksum": lambda d: _replace(d / "layer2.1.conv2.weight.bin",
                                   b"\0\0\0\0" + (d / "layer2.1.conv2.weight.bin").read_bytes()[4:]),
    "wrong shape": lambda d: _edit_manifest(d, lambda m: m["tensors"]["layer2.1.conv2.weight"].update(
        shape=[128, 3, 3, 64])),
    "missing entry": lambda d: _edit_manifest(d, lambda m: m["tensors"].pop("layer2.1.conv2.weight")),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_weights_name_the_tensor(case: str, weights_dir: Path, tmp_path: Path) -> None:
    d = _corrupt_copy(weights_dir, tmp_path / "w")
    CORRUPTIONS[case](d)
    for version in pyresnet.versions():
        with pytest.raises(WeightsError, match="layer2.1.conv2.weight"):
            pyresnet.load(version, weights=d)
    img = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    assert_one_line_error(run_cli("run", "-v", "py", "--weights", str(d), str(img)), "layer2.1.conv2.weight")


@pytest.mark.parametrize("text", ["", "{not json", '{"format": "something else", "tensors": {}}'])
def test_bad_manifest(text: str, weights_dir: Path, tmp_path: Path) -> None:
    d = _corrupt_copy(weights_dir, tmp_path / "w")
    _replace(d / "manifest.json", text.encode())
    with pytest.raises(WeightsError, match="manifest"):
        pyresnet.load("py", weights=d)


def test_missing_weights_dir(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        pyresnet.load("py", weights=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="manifest.json"):
        pyresnet.load("py", weights=tmp_path / "empty")


@pytest.mark.parametrize("version", [v for v in pyresnet.versions() if registry.get(v).directory])
def test_cpp_reader_checks_files_itself(version: str, weights_of, tmp_path: Path) -> None:
    """A file truncated after the Python check is still an error naming the tensor in C++, never a short read."""
    d = _corrupt_copy(weights_of(version), tmp_path / "w")
    native = pyresnet.ops(version)
    _replace(d / "conv1.weight.bin", (d / "conv1.weight.bin").read_bytes()[:100])
    with pytest.raises(native.WeightsError, match="conv1.weight"):
        native.Model(str(d), 1).logits(noise(0))  # preloading versions fail in Model(), v1/v2 in logits()
