"""Hostile input, round three: what we write, what we check before working, Ctrl-C, memory, and the last tracebacks.

Each case is what a hostile (or unlucky) user could do to the surfaces added with the throughput and reduced-precision
work: point an output at a FIFO, a device or a directory; fill the disk; replace the weights while `calibrate` runs;
calibrate on thousands of images; give an output directory that does not exist or cannot be written after a long
run; press Ctrl-C during a large batch; hand a 1.5 GB `.jpg` to `bench --images`; run `agree` over many photos or
without a peer's package; name a class folder with a Unicode digit. Every one must end in one sentence and a
non-zero exit (or a clean exception in the API), leave what was there before intact, and never hang, never
traceback, never grow without bound.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from pyresnet import weights
from pyresnet.errors import UserError
from pyresnet.safeio import check_writable, write_file, write_files

from conftest import assert_one_line_error, default_sigint, run_cli
from test_hostile import leftovers, run_capped


# ------------------------------------------------------------------------------------------------ helpers

def _image(path: Path, h: int = 60, w: int = 80, seed: int = 0) -> Path:
    """A small, smooth, readable picture (its format from the suffix)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3 + seed) % 256, (yy * 5) % 256, (xx + yy + 40 * seed) % 256], -1).astype(np.uint8)
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _device(path: Path) -> Path | None:
    """A character device node like /dev/null at `path` (never the real one), or None where mknod is not allowed."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        return None
    return path


def _drop_dac_override() -> None:
    """In a child about to exec: give up root's right to ignore file permissions (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH leave the bounding set, so the new program runs without them), so that a directory
    without write permission is read-only to it, as it is to any other user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_read_only(directory: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m pyresnet ARGS` with `directory` read-only to it (mode 0555; as root, without the capability that
    ignores it). Skips where this cannot be arranged."""
    mode = directory.stat().st_mode
    directory.chmod(0o555)
    try:
        return subprocess.run([sys.executable, "-m", "pyresnet", *args], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_drop_dac_override if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as e:
        if "preexec_fn" in str(e) or "Exception occurred" in str(e):
            pytest.skip(f"cannot drop root's permission override here ({e})")
        raise
    finally:
        directory.chmod(stat.S_IMODE(mode))


def run_with_file_size_limit(limit: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m pyresnet ARGS` where no file may grow past `limit` bytes (RLIMIT_FSIZE): a write past it fails
    with EFBIG (Python ignores SIGXFSZ), as a write on a full disk fails with ENOSPC."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "pyresnet", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=cap)


# ---------------------------------------------------------------------------------------------- 1. one safe write path

def test_write_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO, a device, a directory, a symlink, a name ending in '/' or empty: one sentence each, nothing written,
    and what was there is still there (a FIFO is not opened, so nothing hangs either)."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(outside)
    cases = {fifo: "a FIFO", tmp_path / "dir": "a directory", tmp_path / "link": "a symbolic link",
             f"{tmp_path}/newdir/": "must name a file", "": "must name a file"}
    device = _device(tmp_path / "null")
    if device is not None:
        cases[device] = "a device"
    for target, fragment in cases.items():
        with pytest.raises(UserError, match=fragment):
            write_file(target, b"x" * 100, UserError, "--out")
        with pytest.raises(UserError, match=fragment):
            check_writable(target, UserError, "--out")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and (tmp_path / "dir").is_dir() and not (tmp_path / "newdir").exists()
    assert (tmp_path / "link").is_symlink() and outside.read_text() == "precious"
    if device is not None:
        assert stat.S_ISCHR(device.lstat().st_mode)
    assert leftovers(tmp_path) == []


def test_write_file_failure_leaves_the_old_file(tmp_path: Path) -> None:
    """A write that fails half-way (the writer raises, as a full disk would) leaves the earlier file whole and no
    temporary file; a write that succeeds replaces it; several files are all written or none is."""
    target = tmp_path / "result.json"
    target.write_text("the earlier result")

    def half(f) -> None:
        f.write(b"{half a res")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match=r"result.json could not be written \(No space left on device\); nothing "
                                        "was changed"):
        write_file(target, half, UserError)
    assert target.read_text() == "the earlier result" and leftovers(tmp_path) == []
    write_file(target, b"new", UserError)
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []
    other = tmp_path / "other.bin"
    with pytest.raises(UserError, match="No space"):
        write_files([(other, b"first"), (target, half)], UserError)
    assert not other.exists() and target.read_bytes() == b"new" and leftovers(tmp_path) == []
    for missing, fragment in ((tmp_path / "no" / "x.json", "does not exist"),
                              (target / "x.json", "is not a directory")):
        with pytest.raises(UserError, match=fragment):
            write_file(missing, b"x", UserError, "--json")


def test_export_onnx_refuses_a_fifo_a_device_and_a_directory_name(weights_dir: Path, tmp_path: Path) -> None:
    """`export --onnx` onto a FIFO or a device replaced it with a 100 MB file, and `--onnx newdir/` wrote a file
    named newdir: each is now one sentence, before the weights are read, and the FIFO or device is still there."""
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    targets = {str(fifo): "FIFO", f"{tmp_path}/newdir/": "must name a file", str(tmp_path): "directory"}
    device = _device(tmp_path / "null.onnx")
    if device is not None:
        targets[str(device)] = "device"
    for target, fragment in targets.items():
        assert_one_line_error(run_capped("export", "--onnx", target, "--weights", str(weights_dir), timeout=30),
                              "--onnx", fragment)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and not (tmp_path / "newdir").exists()
    if device is not None:
        assert stat.S_ISCHR(device.lstat().st_mode)
    assert leftovers(tmp_path) == []


def test_bench_json_on_a_full_disk_keeps_the_earlier_result(weights_dir: Path, tmp_path: Path) -> None:
    """`bench --json` wrote in place: a full disk left a truncated file and the earlier result was gone. With no file
    allowed past 1 kB (the JSON is over 3 kB), the write fails as on a full disk: one sentence, the earlier file whole,
    no temporary file."""
    out = tmp_path / "bench.json"
    out.write_text('{"earlier": true}\n')
    r = run_with_file_size_limit(1024, "bench", "--version", "py", "--no-peers", "--weights", str(weights_dir),
                                 "--min-runs", "1", "--max-runs", "1", "--seconds", "0", "--json", str(out))
    assert_one_line_error(r, f"--json {out} could not be written (File too large); nothing was changed")
    assert out.read_text() == '{"earlier": true}\n' and leftovers(tmp_path) == []


def test_codegen_and_diff_outputs_take_the_same_path(tmp_path: Path) -> None:
    """codegen's generated.cpp and diff's page go through the same write: a planted symlink or FIFO is refused and
    left as it was, and the file outside the link is not written."""
    from pyresnet import registry
    from pyresnet.instruments import codegen

    outside = tmp_path / "outside.cpp"
    outside.write_text("precious")
    if codegen.generating_versions():
        out = tmp_path / "gen"
        out.mkdir()
        (out / "generated.cpp").symlink_to(outside)
        assert_one_line_error(run_cli("codegen", "--out", str(out)), "symbolic link")
        assert outside.read_text() == "precious" and leftovers(out) == []
        (out / "generated.cpp").unlink()
        r = run_cli("codegen", "--out", str(out))
        assert r.returncode == 0 and (out / "generated.cpp").stat().st_size > 1000 and leftovers(out) == []
    compiled = [v.key for v in registry.REGISTRY if v.directory]
    if len(compiled) >= 2:
        fifo = tmp_path / "page.html"
        os.mkfifo(fifo)
        assert_one_line_error(run_cli("diff", compiled[0], compiled[1], "--html", str(fifo)), "--html", "FIFO")
        assert stat.S_ISFIFO(fifo.lstat().st_mode)


# ------------------------------------------------------------------------------------------------ 3. cheap checks first

@pytest.mark.parametrize("where", ["missing directory", "parent is a file", "plot format"])
def test_bench_checks_its_outputs_before_measuring(where: str, weights_dir: Path, tmp_path: Path) -> None:
    """`bench --all` with the default budget measures for minutes; an output it cannot write is said at once (the
    timeout would stop a bench that measured first)."""
    (tmp_path / "file").write_text("x")
    option, target, fragment = {
        "missing directory": ("--json", tmp_path / "missing" / "b.json", "does not exist"),
        "parent is a file": ("--json", tmp_path / "file" / "b.json", "not a directory"),
        "plot format": ("--plot", tmp_path / "b.nope", "cannot write '.nope'"),
    }[where]
    t0 = time.monotonic()
    r = run_cli("bench", "--all", "--weights", str(weights_dir), option, str(target), timeout=60)
    assert_one_line_error(r, option, fragment)
    assert time.monotonic() - t0 < 30


def test_bench_into_a_read_only_directory_fails_before_measuring(weights_dir: Path, tmp_path: Path) -> None:
    ro = tmp_path / "results"
    ro.mkdir()
    r = run_read_only(ro, "bench", "--all", "--weights", str(weights_dir), "--json", str(ro / "b.json"))
    assert_one_line_error(r, "--json", "not writable")
    assert list(ro.iterdir()) == []


def test_calibrate_on_a_read_only_weights_directory_fails_before_the_first_image(weights_dir: Path,
                                                                                  tmp_path: Path) -> None:
    d = tmp_path / "w"
    shutil.copytree(weights_dir, d, copy_function=os.link)
    pic = _image(tmp_path / "a.png")
    r = run_read_only(d, "calibrate", "--weights", str(d), str(pic))
    assert_one_line_error(r, "calibration file", "not writable")
    assert "calibration" not in weights.read_manifest(d)


def test_calibrate_checks_before_it_computes(weights_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A calibration file that cannot be written (here a FIFO in its place) is refused before any image runs."""
    from pyresnet.accuracy import calibrate as cal

    d = tmp_path / "w"
    shutil.copytree(weights_dir, d, copy_function=os.link)
    os.mkfifo(d / "calibration.bin")
    monkeypatch.setattr(cal._Recording, "logits", lambda *a, **k: pytest.fail("an image ran before the checks"))
    with pytest.raises(UserError, match="calibration.bin is a FIFO"):
        cal.calibrate(d, [_image(tmp_path / "a.png")], progress=False)


def test_weights_path_that_is_a_file_says_so(weights_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    pic = _image(tmp_path / "a.png")
    for args in (("calibrate", "--weights", str(f), str(pic)), ("run", "-v", "py", "--weights", str(f), str(pic))):
        assert_one_line_error(run_cli(*args), f"{f} is a file, not a weights directory")


# ------------------------------------------------------------------------------------------------ 2. calibration record

def _sources(n: int, path_len: int = 0) -> list[dict[str, str]]:
    """n image records as `calibrate` writes them; path_len pads each path to about that many characters."""
    import hashlib

    pad = "/".join(["deeply-nested-folder"] * max(0, path_len // 21))
    return [{"name": f"photo-{i:05d}-{'x' * 60}.jpg", "path": f"/data/{pad}/photo-{i:05d}-{'x' * 60}.jpg",
             "sha256": hashlib.sha256(str(i).encode()).hexdigest()} for i in range(n)]


def _ranges() -> np.ndarray:
    from pyresnet import arch

    return np.tile(np.array([[-1.0, 2.0]], np.float32), (len(arch.calibration_points()), 1))


@pytest.fixture
def wcopy(weights_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the test weights (a calibration writes into the directory; files are replaced, never
    written through the links)."""
    d = tmp_path / "w"
    shutil.copytree(weights_dir, d, copy_function=os.link)
    return d


def test_calibration_of_10000_images_leaves_the_folder_readable(wcopy: Path) -> None:
    """calibrate recorded every image in manifest.json, which every reader refuses past 1 MiB: after a few thousand
    images every version refused the folder. The list now has its own file; the manifest keeps a count and the
    list's sha256, so it stays the same size whatever the number of images."""
    from pyresnet.weights.calibration import IMAGES_FILE

    before = (wcopy / "manifest.json").stat().st_size
    sources = _sources(10_000, path_len=200)
    digest = weights.weights_digest(weights.read_manifest(wcopy))
    entry = weights.write_calibration(wcopy, _ranges(), "max", None, sources, weights=digest)
    assert entry["images"] == 10_000 and "sources" not in entry
    assert (wcopy / "manifest.json").stat().st_size < before + 4096  # the entry has a fixed size
    assert (wcopy / IMAGES_FILE).stat().st_size > 1 << 20  # what the manifest would have had to hold
    weights.check(wcopy)  # every version reads the folder
    ranges, _ = weights.read_calibration(wcopy)
    assert np.array_equal(ranges, _ranges())
    assert weights.calibration_sources(wcopy) == sources
    assert leftovers(wcopy) == []


def test_calibration_list_past_its_limit_is_refused_before_any_image(wcopy: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer never writes what its reader refuses: a list past the limit is one sentence, before the first
    image (10,000 images under paths of 4000 characters: 40 MB), and nothing is written."""
    from pyresnet.accuracy import calibrate as cal
    from pyresnet.weights.calibration import CalibrationError, MAX_IMAGES_BYTES

    sources = _sources(10_000, path_len=4000)
    digest = weights.weights_digest(weights.read_manifest(wcopy))
    with pytest.raises(CalibrationError, match="calibrate on fewer images"):
        weights.write_calibration(wcopy, _ranges(), "max", None, sources, weights=digest)
    monkeypatch.setattr(cal._Recording, "logits", lambda *a, **k: pytest.fail("an image ran before the checks"))
    paths = [Path(s["path"]) for s in sources]
    with pytest.raises(CalibrationError, match=f"more than the limit of {MAX_IMAGES_BYTES >> 20} MiB"):
        cal.calibrate(wcopy, paths, progress=False)
    assert "calibration" not in weights.read_manifest(wcopy) and leftovers(wcopy) == []
    assert not (wcopy / "calibration.bin").exists()


def test_weights_replaced_while_calibrating_are_not_given_the_old_ranges(wcopy: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights directory replaced (renamed over, as `weights import --out` does) while calibrate runs: the old
    network's ranges were recorded under the new weights' fingerprint, and the int8 stage loaded them. Now nothing
    is written, in one sentence."""
    import hashlib

    from pyresnet.accuracy import calibrate as cal

    other = tmp_path / "other"
    shutil.copytree(wcopy, other, copy_function=os.link)
    name = "layer3.1.conv2.weight"
    data = (np.fromfile(other / f"{name}.bin", dtype="<f4") * np.float32(1.5)).tobytes()
    (other / f"{name}.bin").unlink()
    (other / f"{name}.bin").write_bytes(data)
    m = json.loads((other / "manifest.json").read_text())
    m["tensors"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    (other / "manifest.json").unlink()
    (other / "manifest.json").write_text(json.dumps(m))
    logits = cal._Recording.logits
    swapped = []

    def swap_then_run(self, x, prof=None):
        if not swapped:
            os.rename(wcopy, tmp_path / "old")
            os.rename(other, wcopy)
            swapped.append(True)
        return logits(self, x, prof)

    monkeypatch.setattr(cal._Recording, "logits", swap_then_run)
    with pytest.raises(weights.CalibrationError, match=f"the weights in {wcopy} changed while calibrating; nothing "
                                                        "was written"):
        cal.calibrate(wcopy, [_image(tmp_path / "a.png")], progress=False)
    assert swapped and "calibration" not in weights.read_manifest(wcopy)
    assert not (wcopy / "calibration.bin").exists() and leftovers(wcopy) == []


def test_calibration_list_read_with_checks_and_old_manifests_still_read(wcopy: Path, tmp_path: Path) -> None:
    """The list is read as every file is: regular, bounded, its sha256 the manifest's (else one sentence naming
    `pyresnet calibrate`, while fp32 stages still load the folder). A manifest written before the list had its own
    file (the list in the entry, `sources`) is still read."""
    from pyresnet.weights.calibration import IMAGES_FILE
    from pyresnet.weights.format import _may_replace

    r = run_cli("calibrate", "--weights", str(wcopy), str(_image(tmp_path / "a.png")), str(_image(tmp_path / "b.jpg")))
    assert r.returncode == 0, r.stderr
    sources = weights.calibration_sources(wcopy)
    assert [s["name"] for s in sources] == ["a.png", "b.jpg"] and sources[0]["path"] == str(tmp_path / "a.png")
    assert _may_replace(wcopy) is None  # `weights ... --out` may still replace a calibrated directory
    listing = (wcopy / IMAGES_FILE).read_bytes()
    for bad in (listing.replace(b"a.png", b"c.png"), "fifo"):
        (wcopy / IMAGES_FILE).unlink()
        if bad == "fifo":
            os.mkfifo(wcopy / IMAGES_FILE)
        else:
            (wcopy / IMAGES_FILE).write_bytes(bad)
        with pytest.raises(weights.CalibrationError, match="does not match|FIFO"):
            weights.calibration_sources(wcopy)
        weights.check(wcopy)
    (wcopy / IMAGES_FILE).unlink()
    m = json.loads((wcopy / "manifest.json").read_text())
    entry = {k: v for k, v in m["calibration"].items() if k not in ("images_file", "images_sha256")}
    m["calibration"] = {**entry, "sources": sources}
    (wcopy / "manifest.json").unlink()
    (wcopy / "manifest.json").write_text(json.dumps(m))
    assert weights.calibration_sources(wcopy) == sources
    weights.read_calibration(wcopy)


# ------------------------------------------------------------------------------------------------ 4. Ctrl-C

def test_closing_the_reader_cancels_the_queued_reads() -> None:
    """read_ahead closed after one item (Ctrl-C or an error in the consumer, or its end): the reads queued in the
    window are dropped at once, only the ones running finish, and the reader threads end."""
    import threading

    from contextlib import closing

    from pyresnet.pipeline import read_ahead

    started: list[Path] = []

    def slow(p: Path) -> np.ndarray:
        started.append(p)
        time.sleep(0.2)
        return np.zeros(1, np.float32)

    before = set(threading.enumerate())
    paths = [Path(f"{i}.jpg") for i in range(200)]
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with closing(read_ahead(paths, slow, readers=2, window=200)) as items:
            for item in items:
                assert item.path == paths[0]
                raise KeyboardInterrupt  # what Ctrl-C raises in the consumer
    assert time.monotonic() - t0 < 1.5, "closing waited for the queued reads"
    ran = len(started)
    assert ran <= 4, f"{ran} reads started for one item consumed"
    readers = [t for t in threading.enumerate() if t not in before]
    assert not readers, f"reader threads still alive: {readers}"
    time.sleep(0.3)
    assert len(started) == ran, "reads went on after the reader was closed"


def _watch_opens(folder: Path) -> Callable[[float], bool] | None:
    """A function waiting (up to its timeout) until a file in `folder` is opened, by inotify; None where Linux does
    not offer it here."""
    import select
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), 0x20) < 0:  # IN_OPEN
        os.close(fd)
        return None

    def wait(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([fd], [], [], left)[0]:
                    return False
                data = os.read(fd, 1 << 16)
                at = 0
                while at + 16 <= len(data):
                    _, mask, _, n = struct.unpack_from("iIII", data, at)
                    if n and data[at + 16:at + 16 + n].strip(b"\0") and not mask & 0x40000000:  # a file, not a dir
                        return True
                    at += 16 + n
            return False
        finally:
            os.close(fd)

    return wait


def test_ctrl_c_during_a_large_batch_ends_at_once(weights_dir: Path, tmp_path: Path) -> None:
    """`run --batch 1024` over a folder of large photos: Ctrl-C while they are being decoded ended only after every
    queued decode (up to 2,048) had finished. Now it ends within about a second, with one line and status 130."""
    import pyresnet

    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (60, 80, 3), np.uint8), (3000, 2000), interpolation=cv2.INTER_CUBIC)
    folder = tmp_path / "large"
    folder.mkdir()
    first = folder / "0000.jpg"
    first.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    for i in range(1, 300):  # 300 decodes of ~60 ms on one reader: many seconds of work queued
        os.link(first, folder / f"{i:04d}.jpg")
    version = "v9" if "v9" in pyresnet.versions() else pyresnet.versions()[-1]
    wait = _watch_opens(folder)
    p = subprocess.Popen([sys.executable, "-m", "pyresnet", "run", "-v", version, "--weights", str(weights_dir),
                          "--batch", "1024", "--readers", "1", str(folder)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        if wait is None or not wait(120):
            time.sleep(5)  # no inotify here: give it time to start decoding
        time.sleep(0.5)  # a few decodes done, the rest queued
        assert p.poll() is None, "run ended before it was interrupted"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130 and err.strip() == "pyresnet: interrupted" and out == "", (p.returncode, err)
    assert elapsed < 2, f"{elapsed:.1f} s from Ctrl-C to the end"


# ------------------------------------------------------------------------------------------------ 5. memory

def test_bench_hashes_a_huge_photo_in_chunks(calibrated_dir: Path, tmp_path: Path) -> None:
    """`bench --images` read each photo whole to hash it (against the calibration images): a 3 GB `.jpg` took
    3.65 GB, and under a memory cap ended in a MemoryError traceback. A 1.5 GB one, with the address space capped at
    1 GiB: hashed in chunks, then refused by its size, in one sentence, before anything is measured."""
    folder = tmp_path / "photos"
    folder.mkdir()
    _image(folder / "a.png")
    with open(folder / "huge.jpg", "wb") as f:
        f.truncate(1536 << 20)  # sparse: costs no disk
    r = run_capped("bench", "--version", "py", "--no-peers", "--weights", str(calibrated_dir), "--images",
                   str(folder), memory_cap=1 << 30)
    assert_one_line_error(r, "huge.jpg", "more than the limit")


def test_agree_keeps_one_image_at_a_time(weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """agree preprocessed every image and its variants before running either side (3 MB an image: 400 images
    peaked at 1.8 GB). Now each image is read, compared and dropped: 8 and 48 images peak at the same memory
    (48 images kept would be 140 MB more)."""
    import tracemalloc

    from pyresnet.accuracy import agree as agree_mod

    class Cheap:  # both sides, without a network: what is measured is what agree keeps
        def logits(self, x: np.ndarray) -> np.ndarray:
            return np.resize(x[::16, ::16].ravel(), 1000).astype(np.float32)

    monkeypatch.setattr(agree_mod, "runner", lambda *a, **k: Cheap())
    pics = [_image(tmp_path / f"p{i:02d}.png", 300, 400, seed=i) for i in range(48)]

    def peak(images: list[Path]) -> float:
        tracemalloc.start()
        try:
            r = agree_mod.agree("py", "oracle", images, weights=str(weights_dir), progress=False)
            assert r["inputs"] == 5 * len(images) and r["top1"] == 1.0
            return tracemalloc.get_traced_memory()[1] / 1e6
        finally:
            tracemalloc.stop()

    small, large = peak(pics[:8]), peak(pics)
    assert large - small < 20, f"agree's peak grew from {small:.0f} MB (8 images) to {large:.0f} MB (48 images)"


# ------------------------------------------------------------------------------------------------ 6. no traceback

@pytest.mark.parametrize("peer,blocked,package", [
    ("pytorch", "torch", "torch"), ("pytorch-bf16", "torch", "torch"), ("onnxruntime", "onnxruntime", "onnxruntime"),
    ("onnxruntime", "onnx", "onnx"), ("onnxruntime-int8", "onnxruntime", "onnxruntime"),
])
def test_a_peer_without_its_package_is_one_sentence(peer: str, blocked: str, package: str, calibrated_dir: Path,
                                                    state: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """agree --version PEER without the peer's package printed an ImportError traceback; now one sentence naming the
    package to install, as the oracle without torch already had."""
    from pyresnet.accuracy.agree import runner

    monkeypatch.setitem(sys.modules, blocked, None)  # `import blocked` now raises ImportError, as if not installed
    manifest = weights.read_manifest(calibrated_dir)
    with pytest.raises(UserError, match=f"'{peer}' needs the {package} package.*pip install {package}$"):
        runner(peer, calibrated_dir, state, manifest, 1)


def test_agree_peer_without_its_package_from_the_command_line(weights_dir: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['onnxruntime'] = None; from pyresnet.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "agree", "--version", "onnxruntime", "--weights",
                        str(weights_dir), str(_image(tmp_path / "a.png"))], capture_output=True, text=True, timeout=120)
    assert_one_line_error(r, "pip install onnxruntime")


@pytest.mark.parametrize("name", ["²", "٣", "1²", "n0000028١"])
def test_eval_class_folder_named_with_a_unicode_digit(name: str, tmp_path: Path) -> None:
    """str.isdigit() accepts '²' and '٣', int() refuses them: that was a ValueError traceback."""
    from pyresnet.accuracy.evaluate import classes

    root = tmp_path / "data"
    (root / name).mkdir(parents=True)
    _image(root / name / "a.png")
    (root / "wnids.txt").write_text("".join(f"n{i:08d}\n" for i in range(1000)))
    with pytest.raises(UserError, match="names no class"):
        classes(root)


def test_eval_unicode_digit_from_the_command_line(weights_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "data" / "²").mkdir(parents=True)
    _image(tmp_path / "data" / "²" / "a.png")
    assert_one_line_error(run_cli("eval", str(tmp_path / "data"), "-v", "py", "--weights", str(weights_dir)),
                          "'²' names no class")


def test_one_list_of_image_suffixes(weights_dir: Path, tmp_path: Path) -> None:
    """A .pbm was classified when named and skipped inside a folder: every format the header reader knows is listed
    in folders too (run, calibrate, agree, bench and eval share the list)."""
    from pyresnet.images import IMAGE_SUFFIXES, list_images
    from pyresnet.images.imagesize import SUFFIXES

    assert {".pbm", ".pgm", ".ppm", ".pnm"} <= IMAGE_SUFFIXES == {s for v in SUFFIXES.values() for s in v}
    folder = tmp_path / "netpbm"
    folder.mkdir()
    grey = (np.add.outer(np.arange(48), np.arange(64)) % 256).astype(np.uint8)
    for suffix in (".pbm", ".pgm", ".pnm"):
        (folder / f"a{suffix}").write_bytes(cv2.imencode(".pbm" if suffix == ".pbm" else ".pgm", grey)[1].tobytes())
    _image(folder / "b.ppm")
    assert [p.name for p in list_images([str(folder)])] == ["a.pbm", "a.pgm", "a.pnm", "b.ppm"]
    r = run_cli("run", "-v", "py", "--weights", str(weights_dir), "--json", str(folder))
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["image"] for line in r.stdout.splitlines()[:-1]] == [str(p) for p in
                                                                                   sorted(folder.iterdir())]
