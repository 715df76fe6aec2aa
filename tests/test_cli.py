"""The `pyresnet` command: run output (text and --json), help, and every user error as one line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import pyresnet
from pyresnet import registry
from pyresnet.reference import check

from conftest import assert_one_line_error, photos, run_cli


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo when the shared folder exists, else a synthetic picture."""
    if photos():
        return photos()[0]
    p = tmp_path_factory.mktemp("img") / "synthetic.png"
    yy, xx = np.mgrid[0:300, 0:400]
    cv2.imwrite(str(p), np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8))
    return p


@pytest.mark.parametrize("version", [v for v in pyresnet.versions() if registry.get(v).precision == "fp32"])
def test_run_prints_the_oracles_top5(version: str, image: Path, weights_dir: Path, oracle) -> None:
    """`pyresnet run --json` gives the oracle's top-5 (v1 too: the issue's acceptance criterion)."""
    r = run_cli("run", "--version", version, "--weights", str(weights_dir), "--json", str(image))
    assert r.returncode == 0, r.stderr
    line, last = r.stdout.splitlines()
    out = json.loads(line)
    assert set(out) == {"version", "image", "latency_ms", "batch", "top"} and out["batch"] == 1
    summary = json.loads(last)["summary"]
    assert summary["images"] == summary["classified"] == 1 and summary["failed"] == 0
    assert out["version"] == version and out["image"] == str(image) and out["latency_ms"] > 0
    assert [t["index"] for t in out["top"]] == check.topk(oracle.logits(pyresnet.preprocess(image)))
    for t in out["top"]:
        assert set(t) == {"index", "label", "prob"} and t["label"] == pyresnet.labels()[t["index"]]
    probs = [t["prob"] for t in out["top"]]
    assert probs == sorted(probs, reverse=True) and 0 <= probs[-1] <= probs[0] <= 1


def test_run_text_output_and_directories(image: Path, weights_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(d / name), cv2.imread(str(image)))
    (d / "notes.txt").write_text("not an image, and not picked up from a directory")
    r = run_cli("run", "-v", "py", "--weights", str(weights_dir), "--topk", "3", str(d))
    assert r.returncode == 0, r.stderr
    assert "random weights" in r.stderr and "meaningless" in r.stderr
    headers = [line for line in r.stdout.splitlines() if " ms" in line and "classified" not in line]
    assert len(headers) == 2 and "a.png" in headers[0] and "b.jpg" in headers[1]
    ranks = [line for line in r.stdout.splitlines() if line.strip()[:2] in ("1.", "2.", "3.", "4.")]
    assert len(ranks) == 6
    r = run_cli("run", "-v", "py", "--weights", str(weights_dir), "--topk", "2", "--json", str(d))
    *lines, summary = [json.loads(line) for line in r.stdout.splitlines()]
    assert [len(out["top"]) for out in lines] == [2, 2] and summary["summary"]["classified"] == 2


def test_help_describes_every_option() -> None:
    r = run_cli("--help")
    assert r.returncode == 0 and "run" in r.stdout and "weights" in r.stdout
    r = run_cli("run", "--help")
    for opt in ("--version", "--weights", "--topk", "--threads", "--json"):
        assert opt in r.stdout
    for sub, opts in (("fetch", ("--variant", "--out")), ("import", ("--out",)), ("random", ("--seed", "--out"))):
        r = run_cli("weights", sub, "--help")
        assert r.returncode == 0 and all(o in r.stdout for o in opts)


@pytest.mark.parametrize("args,fragment", [
    (["run", "--version", "v99", "IMG"], "unknown version 'v99'"),
    (["run", "--topk", "0", "IMG"], "--topk"),
    (["run", "--topk", "1001", "IMG"], "--topk"),
    (["run", "--topk", "five", "IMG"], "--topk"),
    (["run", "--threads", "0", "IMG"], "--threads"),
    (["run", "--threads", "-2", "IMG"], "--threads"),
    (["run", "--threads", "lots", "IMG"], "--threads"),
    (["run", "--threads", "100000", "IMG"], "--threads"),
    (["run", "missing.jpg"], "image not found: missing.jpg"),
    (["run", "--weights", "/nonexistent/weights", "IMG"], "does not exist"),
    (["weights", "random", "--seed", "-1"], "seed"),
    (["weights", "fetch", "--variant", "v3"], "variant"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments(args: list[str], fragment: str, image: Path, weights_dir: Path) -> None:
    args = [str(image) if a == "IMG" else a for a in args]
    if args[0] == "run" and "--weights" not in args:
        args[1:1] = ["--weights", str(weights_dir)]
    assert_one_line_error(run_cli(*args), fragment)


def test_unreadable_image(tmp_path: Path, weights_dir: Path) -> None:
    bad = tmp_path / "fake.jpg"
    bad.write_text("I am text, not a JPEG")
    assert_one_line_error(run_cli("run", "-v", "py", "--weights", str(weights_dir), str(bad)), "fake.jpg")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("run", "-v", "py", "--weights", str(weights_dir), str(tmp_path / "empty")),
                          "no image files")


def test_every_registered_version_is_selectable() -> None:
    r = run_cli("run", "--help")
    for v in registry.REGISTRY:
        assert v.key in r.stdout


def test_run_batches_and_readers_give_the_same_answers(image: Path, calibrated_dir: Path, tmp_path: Path) -> None:
    """--batch and --readers change how images flow, never the answers; the summary counts them."""
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(5):
        cv2.imwrite(str(d / f"{i}.png"), np.roll(cv2.imread(str(image)), 40 * i, axis=1))
    version = pyresnet.versions()[-1]
    outs = []
    for extra in ([], ["--batch", "3", "--readers", "2"]):
        r = run_cli("run", "-v", version, "--weights", str(calibrated_dir), "--json", *extra, str(d))
        assert r.returncode == 0, r.stderr
        *lines, summary = [json.loads(line) for line in r.stdout.splitlines()]
        outs.append([(o["image"], [t["index"] for t in o["top"]]) for o in lines])
        assert summary["summary"]["classified"] == 5 and summary["summary"]["img_s"] > 0
    assert outs[0] == outs[1]
    assert max(json.loads(line).get("batch", 0) for line in r.stdout.splitlines()) == 3


@pytest.mark.parametrize("version", ["v8", "v12"])
def test_run_default_batch(version: str, image: Path, weights_dir: Path, tmp_path: Path) -> None:
    """Without --batch, a stage with a native batch (v12 on) classifies a folder 8 images a call, and one without
    it image by image; the summary says which."""
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(10):
        cv2.imwrite(str(d / f"{i}.png"), np.roll(cv2.imread(str(image)), 20 * i, axis=1))
    r = run_cli("run", "-v", version, "--weights", str(weights_dir), "--json", str(d))
    assert r.returncode == 0, r.stderr
    *lines, summary = [json.loads(line) for line in r.stdout.splitlines()]
    native = registry.get(version).has("batch")
    assert [o["batch"] for o in lines] == ([8] * 8 + [2] * 2 if native else [1] * 10)
    assert summary["summary"]["batch"] == (8 if native else 1)


@pytest.mark.parametrize("args,fragment", [
    (["--batch", "0"], "--batch"), (["--batch", "x"], "--batch"), (["--readers", "0"], "--readers"),
])
def test_bad_run_flow_options(args: list[str], fragment: str, image: Path, weights_dir: Path) -> None:
    assert_one_line_error(run_cli("run", "--weights", str(weights_dir), *args, str(image)), fragment)


def test_run_exact_decode(weights_dir: Path, tmp_path: Path) -> None:
    """--exact-decode (or $PYRESNET_EXACT_DECODE=1) decodes a large JPEG in full; by default it is decoded at a
    reduced scale, a slightly different input: the probabilities differ a little, the option and the variable agree
    exactly."""
    big = tmp_path / "big.jpg"
    rng = np.random.default_rng(3)
    img = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (1600, 1200), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(big), img)

    def probs(*args: str, env: dict | None = None) -> list[float]:
        r = run_cli("run", "-v", "v8", "--weights", str(weights_dir), "--json", *args, env=env)
        assert r.returncode == 0, r.stderr
        return [t["prob"] for t in json.loads(r.stdout.splitlines()[0])["top"]]

    reduced, exact = probs(str(big)), probs("--exact-decode", str(big))
    assert reduced != exact and np.allclose(reduced, exact, atol=0.05)
    assert probs(str(big), env={"PYRESNET_EXACT_DECODE": "1"}) == exact
