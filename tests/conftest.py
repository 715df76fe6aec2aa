"""Minimal fixtures for this branch's tests (the main line's conftest provides the same `weights_dir`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyresnet import weights


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights, seed 0."""
    return weights.random(0, out=tmp_path_factory.mktemp("w"))
