"""The accuracy instruments: calibrate (activation ranges into the weights directory), agree (agreement over photos
and variants, calibration images left out) and eval (top-1/top-5 over a labelled folder), and their bad inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import pyresnet
from pyresnet import arch, registry, weights
from pyresnet.errors import UserError, WeightsError

from conftest import assert_one_line_error, photos, run_cli


def _pictures(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        yy, xx = np.mgrid[0:150, 0:200]
        img = np.stack([(xx * (i + 1)) % 256, (yy * (i + 2)) % 256, rng.integers(0, 256, (150, 200))], -1)
        p = folder / f"pic{i}.png"
        cv2.imwrite(str(p), img.astype(np.uint8))
        out.append(p)
    return out


@pytest.fixture
def wcopy(weights_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the test weights (calibration writes into the directory)."""
    d = tmp_path / "w"
    shutil.copytree(weights_dir, d, copy_function=os.link)
    return d


def test_calibrate_records_every_range(wcopy: Path, tmp_path: Path) -> None:
    pics = _pictures(tmp_path / "cal", 3)
    r = run_cli("calibrate", "--weights", str(wcopy), str(tmp_path / "cal"))
    assert r.returncode == 0, r.stderr
    ranges, entry = weights.read_calibration(wcopy)
    points = arch.calibration_points()
    assert ranges.shape == (len(points), 2) and entry["images"] == 3 and entry["method"] == "max"
    assert [s["name"] for s in weights.calibration_sources(wcopy)] == [p.name for p in pics]
    assert (ranges[:, 0] <= ranges[:, 1]).all()
    relu_outputs = [i for i, p in enumerate(points) if p.endswith((".out", ".conv1", ".conv2")) or p == "conv1"]
    assert (ranges[relu_outputs, 0] >= 0).all(), "a ReLU output below zero"
    assert ranges[points.index("input"), 0] < 0 < ranges[points.index("input"), 1]
    weights.check(wcopy)  # the manifest covers the calibration file
    # percentile ranges lie inside the max ranges of the same images
    r = run_cli("calibrate", "--weights", str(wcopy), "--method", "percentile", "--percentile", "99", *map(str, pics))
    assert r.returncode == 0, r.stderr
    inner, entry = weights.read_calibration(wcopy)
    assert entry["method"] == "percentile" and entry["percentile"] == 99
    assert (inner[:, 1] <= ranges[:, 1] + 1e-6).all() and (inner[:, 0] >= ranges[:, 0] - 1e-6).all()


def test_calibration_corrupt_or_stale(wcopy: Path, tmp_path: Path) -> None:
    _pictures(tmp_path / "cal", 1)
    assert run_cli("calibrate", "--weights", str(wcopy), str(tmp_path / "cal")).returncode == 0
    m = json.loads((wcopy / "manifest.json").read_text())
    stale = dict(m, calibration=dict(m["calibration"], weights="0" * 64))
    (wcopy / "manifest.json").write_text(json.dumps(stale))
    with pytest.raises(WeightsError, match="stale"):
        weights.read_calibration(wcopy)
    weights.check(wcopy)  # an fp32 stage does not need it: only its integrity is checked at load
    (wcopy / "manifest.json").write_text(json.dumps(m))
    data = (wcopy / "calibration.bin").read_bytes()
    (wcopy / "calibration.bin").unlink()
    (wcopy / "calibration.bin").write_bytes(b"\0" * len(data))
    with pytest.raises(WeightsError, match="calibration"):
        pyresnet.load("py", weights=wcopy)
    bad = dict(m, calibration=dict(m["calibration"], method="vibes"))
    (wcopy / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(WeightsError, match="calibration.method"):
        weights.read_manifest(wcopy)


def test_calibrate_bad_inputs(wcopy: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("calibrate", "--weights", str(wcopy), str(tmp_path / "empty")), "no image files")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    r = run_cli("calibrate", "--weights", str(wcopy), str(junk))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "nothing to calibrate" in r.stderr.splitlines()[-1]
    assert "calibration" not in json.loads((wcopy / "manifest.json").read_text())
    good = _pictures(tmp_path / "cal", 1)[0]
    r = run_cli("calibrate", "--weights", str(wcopy), str(junk), str(good))
    assert r.returncode != 0 and "junk.png" in r.stderr and "Traceback" not in r.stderr
    assert weights.read_calibration(wcopy)[1]["images"] == 1  # the readable one was used, and said so
    assert_one_line_error(run_cli("calibrate", "--weights", str(wcopy), "--method", "percentile", "--percentile",
                                  "20", str(good)), "--percentile")


@pytest.mark.parametrize("version", [v for v in pyresnet.versions() if registry.get(v).has("int8")])
def test_int8_stage_without_calibration_says_how(version: str, weights_dir: Path) -> None:
    with pytest.raises(WeightsError, match="pyresnet calibrate"):
        pyresnet.load(version, weights=weights_dir)


def test_agree_leaves_calibration_images_out(wcopy: Path, tmp_path: Path) -> None:
    cal = _pictures(tmp_path / "cal", 2)
    ev = _pictures(tmp_path / "ev", 2, seed=1)
    assert run_cli("calibrate", "--weights", str(wcopy), *map(str, cal)).returncode == 0
    newest = pyresnet.versions()[-1]
    r = run_cli("agree", "--version", newest, "--weights", str(wcopy), "--json", "--threads", "2",
                str(cal[0]), *map(str, ev))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["inputs"] == 2 * 5 and out["skipped_calibration_images"] == [str(cal[0])]
    fp32 = not (registry.get(newest).has("int8") or registry.get(newest).has("bf16"))
    if fp32:  # an fp32 stage agrees with the oracle to the checker's tolerance on every input
        assert out["top1"] == 1.0 and out["top5_overlap"] == 1.0 and out["rel_diff_max"] <= 1e-3
    r = run_cli("agree", "--version", "onnxruntime-int8", "--weights", str(wcopy), "--json", "--no-variants",
                *map(str, ev))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["inputs"] == 2 and 0 <= out["top1"] <= 1 and out["rel_diff_max"] > 0  # int8 is not exact
    assert_one_line_error(run_cli("agree", "--version", "v99", str(ev[0])), "unknown version")
    assert_one_line_error(run_cli("agree", "--version", "py", "--weights", str(wcopy), str(cal[0])),
                          "calibration images")


def test_agree_int8_peer_needs_calibration(weights_dir: Path, tmp_path: Path) -> None:
    ev = _pictures(tmp_path / "ev", 1)
    assert_one_line_error(run_cli("agree", "--version", "onnxruntime-int8", "--weights", str(weights_dir),
                                  str(ev[0])), "pyresnet calibrate")


def _labelled(root: Path) -> dict[str, int]:
    """A small labelled folder: class folders named by index, by WordNet id (with a synset list) and by label."""
    root.mkdir()
    (root / "wnids.txt").write_text("".join(f"n{i:08d}\n" for i in range(1000)))
    names = {"7": 7, "n00000281": 281, "goldfish": 1}
    for k, (name, _) in enumerate(names.items()):
        _pictures(root / name, 2, seed=k)
    return names


def test_eval_on_a_labelled_folder(calibrated_dir: Path, tmp_path: Path, models) -> None:
    names = _labelled(tmp_path / "data")
    version = pyresnet.versions()[-1]
    r = run_cli("eval", str(tmp_path / "data"), "-v", version, "--weights", str(calibrated_dir), "--json",
                "--batch", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    m = models(version)
    hits1 = hits5 = 0
    for name, c in names.items():
        for p in sorted((tmp_path / "data" / name).iterdir()):
            top = [i for i, *_ in m.classify(p, topk=5)]
            hits1 += top[0] == c
            hits5 += c in top
    assert out["evaluated"] == 6 and out["classes"] == 3
    assert out["top1"] == hits1 / 6 and out["top5"] == hits5 / 6


def test_eval_bad_folders(calibrated_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    _pictures(tmp_path / "flat", 1)
    assert_one_line_error(run_cli("eval", str(tmp_path / "flat"), "--weights", str(calibrated_dir)), "no class")
    _pictures(tmp_path / "wn" / "n01440764", 1)
    assert_one_line_error(run_cli("eval", str(tmp_path / "wn"), "--weights", str(calibrated_dir)), "synset list")
    _pictures(tmp_path / "odd" / "cats and dogs", 1)
    assert_one_line_error(run_cli("eval", str(tmp_path / "odd"), "--weights", str(calibrated_dir)), "names no class")
    assert_one_line_error(run_cli("eval", str(tmp_path / "nowhere"), "--weights", str(calibrated_dir)),
                          "not a directory")
