"""The thread pool every stage from v6 on uses (csrc/v6_threads/threadpool.h, frozen copies after it), built alone
with ThreadSanitizer and run under stress: a call returns when its tasks are done, not when every worker has
reported, so a worker may arrive late for a call that is over; nothing it touches may race with the next call or
with the pool's destructor, and every task of every call must run exactly once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_thread_pool_under_thread_sanitizer(tmp_path: Path) -> None:
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("no g++ to build the stress test with")
    exe = tmp_path / "stress"
    # without the suite's own sanitizer preload (an AddressSanitizer run): one sanitizer runtime per process
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    build = subprocess.run([cxx, "-std=c++17", "-O1", "-g", "-fsanitize=thread", "-Wall", "-Wextra",
                            f"-I{REPO / 'csrc' / 'v6_threads'}", str(REPO / "tests" / "threadpool_stress.cpp"),
                            "-o", str(exe), "-lpthread"], capture_output=True, text=True, env=env)
    if build.returncode != 0 and "tsan" in build.stderr.lower():
        pytest.skip(f"this compiler cannot link ThreadSanitizer: {build.stderr.strip()[:200]}")
    assert build.returncode == 0 and not build.stderr, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr
    assert "ThreadSanitizer" not in run.stderr, run.stderr
