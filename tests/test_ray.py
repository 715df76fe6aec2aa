"""pyresnet.ray and `pyresnet run --ray` on a real local Ray cluster (ray.init(num_cpus=2), one for the module).

Held here: every image's logits through Ray equal, bit for bit, those of `run`'s own pipeline on the same files with
the same stage (v12 with its weights read from their path, v15 with its weights and calibration shipped through the
object store); a corrupt file, a pixel bomb and a FIFO are one error row each and the job goes on; an actor killed
in the middle of a batch is started again by Ray and no image is lost or counted twice; every user error is one line
before Ray starts; without Ray, --ray says how to install it. The tests that need Ray skip without it (the `ray`
extra: pip install -e '.[test,ray]').
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import struct
import sys
import zlib
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

import pyresnet
from pyresnet.pipeline import classify as run_pipeline, default_batch, default_readers

from conftest import assert_one_line_error, photos, run_cli


def _have_ray() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.data") is not None
    except (ImportError, ValueError):
        return False


needs_ray = pytest.mark.skipif(not _have_ray(), reason="needs Ray Data: pip install -e '.[test,ray]'")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The photos, else six synthetic pictures."""
    if photos():
        return photos()
    d = tmp_path_factory.mktemp("synthetic")
    out = []
    for i in range(6):
        yy, xx = np.mgrid[0:300 + 20 * i, 0:400]
        p = d / f"s{i}.png"
        cv2.imwrite(str(p), np.stack([(xx * (i + 1)) % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8))
        out.append(p)
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray cluster of 2 CPUs for the module; shipped weights go to a cache of its own (the workers inherit
    the environment of the process that starts the cluster)."""
    import logging

    import ray

    cache = tmp_path_factory.mktemp("ray-cache") / "cache"
    saved = os.environ.get("PYRESNET_RAY_CACHE")
    os.environ["PYRESNET_RAY_CACHE"] = str(cache)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield {"address": ray.get_runtime_context().gcs_address, "cache": cache}
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYRESNET_RAY_CACHE", None)
        else:
            os.environ["PYRESNET_RAY_CACHE"] = saved


def run_logits(version: str, weights: Path, paths: list[Path]) -> dict[str, np.ndarray]:
    """{absolute path: logits} from `pyresnet run`'s own pipeline (its defaults: batch, readers, all the threads)."""
    model = pyresnet.load(version, weights=weights)
    out = {}
    with closing(run_pipeline(model, paths, default_batch(model), default_readers())) as stream:
        for b in stream:
            for item, y in zip(b.good, b.logits):
                out[os.path.abspath(item.path)] = y
    return out


def png_header(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes that declares width x height pixels (tests/test_hostile.py's bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@needs_ray
def test_logits_bitwise_as_run_v12_weights_from_their_path(cluster, corpus: list[Path], weights_dir: Path) -> None:
    """The API: read_images -> classify (v12, weights read by each actor from their path) gives each image the
    logits `run`'s pipeline gives it, bit for bit, and the top-k of those logits."""
    import pyresnet.ray as pr

    job = pr.prepare("v12", weights_dir, logits=True, topk=3, ship_weights=False)
    rows = job.dataset(pr.read_images(corpus)).take_all()
    assert job.placement["weights_via"] == "path" and job.placement["actors"] == 2  # 2 CPUs, 1 thread each
    want = run_logits("v12", weights_dir, corpus)
    assert sorted(r["path"] for r in rows) == sorted(want)  # every image once
    model = pyresnet.load("v12", weights=weights_dir, threads=1)
    for r in rows:
        got = np.asarray(r["logits"], np.float32)
        assert r["error"] is None
        assert got.tobytes() == want[r["path"]].tobytes(), r["path"]
        top = model.top(want[r["path"]], 3)
        assert list(r["indices"]) == [t[0] for t in top] and list(r["labels"]) == [t[1] for t in top]
        assert list(r["probs"]) == [t[2] for t in top]


@needs_ray
def test_cli_v15_shipped_weights_parquet_bad_files_are_rows(cluster, corpus: list[Path], calibrated_dir: Path,
                                                            tmp_path: Path) -> None:
    """`run DIR FIFO --ray ADDRESS --out FILE.parquet` with the int8 stage, its weights and calibration shipped
    through the object store: each photo's logits are run's, bitwise; the corrupt file, the pixel bomb and the FIFO
    are one error row each; the summary counts them and the exit status is 1."""
    import pyarrow.parquet as pq

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in corpus:
        shutil.copy(p, folder / p.name)
    (folder / "corrupt.jpg").write_bytes(corpus[0].read_bytes()[:3000])  # truncated: no end-of-image marker
    (folder / "bomb.png").write_bytes(png_header(100_000, 100_000))
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    out = tmp_path / "results.parquet"
    r = run_cli("run", str(folder), str(fifo), "--version", "v15", "--weights", str(calibrated_dir), "--ray",
                cluster["address"], "--ship-weights", "--logits", "--out", str(out), timeout=300)
    assert r.returncode == 1, r.stderr
    assert "pyresnet: error: 3 of" in r.stderr.splitlines()[-1] and "Traceback" not in r.stderr
    assert f"{len(corpus)} image(s) classified" in r.stdout and "shipped through the object store" in r.stdout
    rows = pq.read_table(out).to_pylist()
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == len(corpus) + 3  # every file once
    errors = {Path(p).name: row["error"] for p, row in by_path.items() if row["error"] is not None}
    assert set(errors) == {"corrupt.jpg", "bomb.png", "fifo.jpg"}, errors
    assert "cannot read" in errors["corrupt.jpg"] and "megapixels" in errors["bomb.png"]
    assert "FIFO" in errors["fifo.jpg"]
    assert all(by_path[str(folder / n)]["indices"] is None for n in ("corrupt.jpg", "bomb.png"))
    want = run_logits("v15", calibrated_dir, sorted(folder.iterdir()))
    assert len(want) == len(corpus)
    for path, y in want.items():
        assert np.asarray(by_path[path]["logits"], np.float32).tobytes() == y.tobytes(), path
    assert list((cluster["cache"]).glob("weights-*/calibration.bin")), "the calibration was not shipped"


@needs_ray
def test_an_actor_killed_mid_job_loses_and_repeats_no_image(cluster, corpus: list[Path], weights_dir: Path,
                                                           tmp_path: Path) -> None:
    """One actor process is killed (SIGKILL, its pid from itself) in the middle of a batch: Ray starts it again and
    runs the batch again; every image is in the result exactly once, with run's logits."""
    import pyresnet.ray as pr

    folder = tmp_path / "many"
    folder.mkdir()
    paths = []
    for k in range(3):
        for p in corpus:
            q = folder / f"{k}-{p.name}"
            os.link(p, q)
            paths.append(q)
    marker = tmp_path / "killed"

    class Killer(pr.Classifier):
        """On its second batch, the first actor to get there records its pid and kills itself, mid-call. (A class
        local to the test: cloudpickle sends it by value, the workers cannot import a test module.)"""

        calls = 0

        def __call__(self, batch):
            Killer.calls += 1
            if Killer.calls == 2:
                try:
                    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                except FileExistsError:
                    pass
                else:
                    os.write(fd, str(os.getpid()).encode())
                    os.close(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(batch)

    job = pr.prepare("v12", weights_dir, logits=True, batch=2, ship_weights=False)
    rows = job.dataset(pr.read_images(paths), udf=Killer).take_all()
    assert marker.is_file(), "no actor was killed: the test did not test anything"
    assert sorted(r["path"] for r in rows) == sorted(os.path.abspath(p) for p in paths)  # none lost, none twice
    assert all(r["error"] is None for r in rows)
    want = run_logits("v12", weights_dir, paths)
    assert all(np.asarray(r["logits"], np.float32).tobytes() == want[r["path"]].tobytes() for r in rows)


@needs_ray
def test_an_actor_that_cannot_load_is_the_users_sentence(cluster, corpus: list[Path], weights_dir: Path,
                                                         tmp_path: Path) -> None:
    """Weights that a worker cannot see (checked on the driver, gone by the time the actors start, as a path that
    is not on every node): Ray's error carries only the actor's traceback text, and user_error_of() finds the
    WeightsError sentence in it for the one-line error of `run --ray`."""
    import pyresnet.ray as pr

    d = tmp_path / "w"
    shutil.copytree(weights_dir, d)
    job = pr.prepare("v12", d, ship_weights=False)
    shutil.rmtree(d)
    with pytest.raises(Exception) as failed:
        job.dataset(pr.read_images(corpus[:2])).take_all()
    cause = pr.user_error_of(failed.value)
    assert isinstance(cause, pyresnet.WeightsError) and str(d) in str(cause), failed.value


@needs_ray
def test_the_plan_follows_the_clusters_cpus(cluster) -> None:
    """Actors = CPUs // threads; threads no more than a node has, actors no more than fit: one sentence each."""
    import pyresnet.ray as pr

    assert pr.plan(None, None) == (1, 2, 1)
    assert pr.plan(2, None) == (2, 1, 1)
    assert pr.plan(1, 1) == (1, 1, 1)
    with pytest.raises(pyresnet.UserError, match="more than the CPUs of any node"):
        pr.plan(3, None)
    with pytest.raises(pyresnet.UserError, match="do not fit"):
        pr.plan(2, 2)


def test_check_files_refuses_what_ray_must_not_read(tmp_path: Path, corpus: list[Path]) -> None:
    """Before Ray reads a byte: a FIFO, a directory and a file larger than any image within the limit are refused
    with run's sentences; a photo passes, made absolute."""
    from pyresnet.ray import check_files

    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(17 << 20)  # sparse: 17 MiB, past 8 bytes x 1 pixel + 16 MiB
    good, bad = check_files([corpus[0], fifo, tmp_path, big], max_pixels=1)
    assert good == [os.path.abspath(corpus[0])]
    why = dict(bad)
    assert "is a FIFO" in why[str(fifo)] and "is a directory" in why[str(tmp_path)]
    assert "more than the limit" in why[str(big)]


def test_without_ray_the_option_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys, corpus) -> None:
    """No Ray installed (simulated: `import ray` fails): one line naming pip install 'pyresnet[ray]', exit 1."""
    from pyresnet import cli

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert cli.main(["run", str(corpus[0]), "--ray"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'pyresnet[ray]'" in err[0], err


@needs_ray
@pytest.mark.parametrize("case", ["version", "weights", "uncalibrated", "out-dir", "out-fifo", "out-missing-dir",
                                  "topk", "address", "readers", "isa"])
def test_user_errors_are_one_line_before_ray_starts(case: str, corpus: list[Path], weights_dir: Path,
                                                    tmp_path: Path) -> None:
    """Each is one line on stderr and a non-zero exit, and Ray never started (it would have logged); an option the
    stage's native loader refuses too (the driver loads the model once before Ray starts)."""
    img = str(corpus[0])
    fifo = tmp_path / "out.jsonl"
    if case == "out-fifo":
        os.mkfifo(fifo)
    args = {
        "version": ["--version", "v99"],
        "weights": ["--weights", str(tmp_path / "none")],
        "uncalibrated": ["--version", "v15"],
        "out-dir": ["--out", str(tmp_path)],
        "out-fifo": ["--out", str(fifo)],
        "out-missing-dir": ["--out", str(tmp_path / "no" / "r.jsonl")],
        "topk": ["--topk", "0"],
        "readers": ["--readers", "2"],
    }.get(case, [])
    ray = ["--ray", img] if case == "address" else [img, "--ray"]
    extra = [] if case == "weights" else ["--weights", str(weights_dir)]
    env = {"PYRESNET_ISA": "avx512_vnni"} if case == "isa" else None  # v12 has no such path: its loader refuses
    r = run_cli("run", *ray, *extra, *args, env=env, timeout=120)
    assert_one_line_error(r)
    assert r.returncode != 0 and r.stdout == ""


def test_ray_options_need_ray(corpus: list[Path], weights_dir: Path, tmp_path: Path) -> None:
    """--out, --logits, --actors and --ship-weights are options of --ray: without it, one line saying so."""
    r = run_cli("run", str(corpus[0]), "--weights", str(weights_dir), "--out", str(tmp_path / "x.jsonl"))
    assert_one_line_error(r, "--out is an option of --ray")
    assert not (tmp_path / "x.jsonl").exists()
