"""Ctrl-C ends a long inference within a layer, and leaves the model as good as before.

Every compiled stage checks a call's Interrupt at each layer boundary (csrc/common/interrupt.h); pyresnet.Model runs
a long call (a native batch, or any call of a slow stage) on a worker thread while the main thread waits, so that
Python's SIGINT handler runs and sets the call's Interrupt. Tested per stage, with no new test code for a new one:
a call whose flag is already set stops at its first layer with KeyboardInterrupt; a flag set while a batch runs
stops it within a layer; SIGINT to the process ends Model.logits the same way; and the next call on the same model
gives bitwise the logits it gave before.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest

import pyresnet
from pyresnet import registry

from conftest import default_sigint, noise

COMPILED = [v for v in pyresnet.versions() if registry.get(v).directory is not None]
BATCHED = [v for v in COMPILED if registry.get(v).has("batch")]


@contextmanager
def sigint_after(seconds: float) -> Iterator[None]:
    """Send this process SIGINT after `seconds`, raised as KeyboardInterrupt only inside the block: a signal that
    comes late (the call ended first, a failure) is swallowed instead of interrupting the whole test session."""
    armed = [True]

    def handler(signum: int, frame: object) -> None:
        if armed[0]:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        armed[0] = False
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("version", COMPILED)
def test_a_set_interrupt_stops_the_call_and_the_model_still_works(version: str, models, logits_of) -> None:
    m = models(version)
    token = pyresnet.registry.module(version).Interrupt()
    token.set()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        m.native.logits(noise(0), interrupt=token)
    assert time.perf_counter() - t0 < 1.0
    if not registry.get(version).slow:  # (a slow stage's second call would cost seconds; it has no state to lose)
        assert np.array_equal(m.logits(noise(0)), logits_of(version, "noise0"))


@pytest.mark.parametrize("version", BATCHED)
def test_an_interrupt_set_during_a_batch_stops_it_within_a_layer(version: str, models) -> None:
    m = models(version)
    x = np.stack([noise(i) for i in range(3)])
    before = m.logits(x)
    big = np.ascontiguousarray(np.broadcast_to(x[0], (48, *x.shape[1:])))
    token = pyresnet.registry.module(version).Interrupt()
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            m.native.logits(big, interrupt=token)
            outcome["result"] = "finished"
        except KeyboardInterrupt:
            outcome["result"] = "interrupted"
        outcome["end"] = time.perf_counter()

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.2)
    token.set()
    set_at = time.perf_counter()
    worker.join(30)
    assert outcome["result"] == "interrupted"
    assert outcome["end"] - set_at < 1.0  # type: ignore[operator]
    assert np.array_equal(m.logits(x), before)


@pytest.mark.parametrize("version", BATCHED[-1:] + [v for v in COMPILED if registry.get(v).slow])
def test_sigint_ends_model_logits_within_a_second(version: str, models) -> None:
    """The signal reaches the main thread while Model.logits waits for its worker; the call stops, the model is
    fine (a batch stage on a big batch, and a slow stage on one image)."""
    m = models(version)
    x = noise(0) if registry.get(version).slow else np.ascontiguousarray(np.broadcast_to(noise(0), (48, 224, 224, 3)))
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), sigint_after(0.3):
        m.logits(x)
    assert time.perf_counter() - t0 < 1.5
    if not registry.get(version).slow:
        assert np.array_equal(m.logits(x[:2]), np.stack([m.logits(x[0])] * 2))


@pytest.mark.parametrize("version", BATCHED[:1])
def test_a_call_from_another_thread_runs_there(version: str, models) -> None:
    """Off the main thread no SIGINT can arrive, so a call runs where it is made, without a token; on the main thread
    it runs on the model's one call thread, the same one every time."""
    m = models(version)
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(m._interruptible(lambda token: (token, threading.current_thread()))))
    t.start()
    t.join()
    assert seen == [(None, t)]
    first = m._interruptible(lambda token: (token, threading.current_thread()))
    second = m._interruptible(lambda token: (token, threading.current_thread()))
    assert first[0] is not None and first[1] is second[1] and first[1] is not threading.main_thread()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not BATCHED or not os.path.exists("/proc/self/stat"), reason="needs a batch stage and /proc")
def test_ctrl_c_during_a_native_batch_call_ends_run_within_a_second(weights_dir, tmp_path) -> None:
    """`run --batch 96` over small images: decoding is over in a moment and one native call of 96 images takes
    seconds. SIGINT once the process has spent well over its start-up and decoding CPU time, that is, inside that
    call: it ends within about a second, with one line and status 130."""
    import subprocess
    import sys

    import cv2

    folder = tmp_path / "small"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(96):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (64, 64, 3), np.uint8))
    p = subprocess.Popen([sys.executable, "-m", "pyresnet", "run", "-v", BATCHED[0], "--weights", str(weights_dir),
                          "--batch", "96", "--threads", "2", str(folder)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and _cpu_seconds(p.pid) < 3.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, "run ended before it was interrupted"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130 and err.strip() == "pyresnet: interrupted" and out == "", (p.returncode, err, out)
    assert elapsed < 1.5, f"{elapsed:.1f} s from Ctrl-C to the end"
