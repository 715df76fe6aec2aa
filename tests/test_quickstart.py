"""The README's quick start, run as written: a fresh clone's first command needs nothing beside the package."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyresnet

ROOT = Path(__file__).resolve().parents[1]
SETUP = ("python3 -m venv", ". .venv/bin/activate", "pip install")  # what CI has already done for this environment


def quick_start() -> str:
    """The first shell block of the README's Quick start section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Quick start"):]
    return re.search(r"```sh\n(.*?)\n```", section, re.S).group(1)


def test_quick_start_names_no_path_outside_the_package() -> None:
    cmd = quick_start()
    assert "../" not in cmd and "/tmp" not in cmd and "/work" not in cmd, cmd


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    steps = [s.strip() for s in quick_start().split(" && ")]
    assert any(s.startswith("pyresnet run") for s in steps)
    rest = [s for s in steps if not s.startswith(SETUP)]
    assert len(rest) == len(steps) - len(SETUP)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYRESNET_WEIGHTS_ROOT": str(tmp_path / "weights"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           # the fetch must fail here, fast and the same way online or not: a proxy nobody listens on
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    env.pop("PYRESNET_WEIGHTS", None)
    out = subprocess.run(["bash", "-c", " && ".join(rest)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert str(pyresnet.sample_image()) in out.stdout
    assert re.search(r"^\s+1\.\s+\d+ ", out.stdout, re.M), out.stdout  # a ranked class
    assert "random weights" in out.stderr  # the offline fallback said so


def test_sample_photo_ships_with_its_licence() -> None:
    photo = pyresnet.sample_image()
    assert photo.read_bytes()[:2] == b"\xff\xd8"
    notice = photo.with_name(photo.name + ".LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in notice and "Copyright (c) 2023 iwaihou" in notice


def test_run_without_an_image_classifies_the_sample(weights_dir: Path, capsys) -> None:
    from pyresnet import cli

    assert cli.main(["run", "--version", "v8", "--weights", str(weights_dir), "--json"]) == 0
    assert str(pyresnet.sample_image()) in capsys.readouterr().out
