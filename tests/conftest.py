"""Shared fixtures: one deterministic random network, the torch oracle over it, the test photos.

The photos live outside the repository, in ../shared/images (override with $PYRESNET_IMAGES); tests that need
them are skipped when the folder is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyresnet
from pyresnet import weights

REPO = Path(__file__).resolve().parent.parent
IMAGES = Path(os.environ.get("PYRESNET_IMAGES", REPO.parent / "shared" / "images"))


def photos() -> list[Path]:
    """The real photos to test with, sorted; empty when the folder is missing."""
    if not IMAGES.is_dir():
        return []
    return sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def noise(seed: int) -> np.ndarray:
    """A seeded random input, already 'preprocessed' (float32 224x224x3)."""
    return np.random.default_rng(seed).standard_normal((224, 224, 3)).astype(np.float32)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights, seed 0: torchvision-style init and randomised BatchNorm."""
    return weights.random(0, out=tmp_path_factory.mktemp("weights") / "random-seed0")


def calibration_images(folder: Path) -> list[Path]:
    """The images the int8 stage's test weights are calibrated on: the first 3 photos (the rest stay for evaluation),
    or 3 synthetic pictures written into folder when there are no photos."""
    if photos():
        return photos()[:3]
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(3):
        yy, xx = np.mgrid[0:150, 0:200]
        p = folder / f"cal{i}.png"
        cv2.imwrite(str(p), np.stack([(xx * (i + 1)) % 256, (yy * (i + 2)) % 256, (xx + yy) % 256], -1).astype(np.uint8))
        out.append(p)
    return out


@pytest.fixture(scope="session")
def calibrated_dir(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the test weights with a calibration (`pyresnet calibrate` on calibration_images()), which the int8
    stage needs; weights_dir itself stays uncalibrated."""
    import shutil

    from pyresnet.accuracy.calibrate import calibrate

    d = tmp_path_factory.mktemp("calibrated") / "random-seed0"
    shutil.copytree(weights_dir, d, copy_function=os.link)  # calibrate replaces files, never writes through a link
    calibrate(d, calibration_images(tmp_path_factory.mktemp("calibration-images")), progress=False)
    return d


@pytest.fixture(scope="session")
def weights_of(weights_dir: Path, request: pytest.FixtureRequest):
    """The test weights for a version: calibrated for a stage that needs it (registry feature "int8")."""
    from pyresnet import registry

    return lambda version: (request.getfixturevalue("calibrated_dir") if registry.get(version).has("int8")
                            else weights_dir)


@pytest.fixture(scope="session")
def state(weights_dir: Path) -> dict:
    return weights.check(weights_dir)[0]


@pytest.fixture(scope="session")
def oracle(state: dict):
    from pyresnet.reference.oracle import Oracle

    return Oracle(state)


@pytest.fixture(scope="session")
def models(weights_of):
    """Loaded models, one per version, shared by the tests of a session."""
    cache: dict[str, pyresnet.Model] = {}

    def get(version: str) -> pyresnet.Model:
        if version not in cache:
            cache[version] = pyresnet.load(version, weights=weights_of(version), threads=2)
        return cache[version]

    return get


@pytest.fixture(scope="session")
def logits_of(models):
    """logits_of(version, x_name): one version's logits on a named input ('noise0', 'noise1', or a photo's file name),
    computed once per session (v1 takes seconds per image) and shared by the tests that need them."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def get(version: str, name: str) -> np.ndarray:
        if (version, name) not in cache:
            x = noise(int(name[5:])) if name.startswith("noise") else pyresnet.preprocess(IMAGES / name)
            cache[version, name] = models(version).logits(x)
        return cache[version, name]

    return get


def default_sigint() -> None:
    """preexec_fn for a child that a test will Ctrl-C: SIGINT back to its default disposition. A suite started in the
    background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT ignored, Python leaves an ignored SIGINT
    ignored, and the child would then never see the interrupt a terminal's Ctrl-C delivers."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m pyresnet ARGS` in a subprocess, capturing text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pyresnet", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, one line on stderr saying what is wrong, no traceback."""
    assert r.returncode != 0, r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "error" in lines[0] and "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
