"""The sample photo shipped inside the package (data/cat.jpg, MIT-licensed: data/cat.jpg.LICENSE), so that
`pyresnet run` classifies something in a fresh clone or install with nothing beside it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE = "data/cat.jpg"


def sample_image() -> Path:
    """The path of the packaged sample photo (a cat, from the project pyresnet grew from)."""
    path = Path(str(resources.files("pyresnet").joinpath(SAMPLE)))
    if not path.is_file():
        raise FileNotFoundError(f"corrupt installation: pyresnet/{SAMPLE} is missing")
    return path
