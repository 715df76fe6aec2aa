"""Preprocessing: torchvision's eval transform (PIL) reproduced with OpenCV, and every awkward image kind."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import pyresnet
from pyresnet.errors import ImageError
from pyresnet.images import MEAN, STD

from conftest import photos


def torchvision_reference(path: Path) -> np.ndarray:
    """transforms.Resize(256) + CenterCrop(224) + ToTensor + Normalize on a PIL image, written out (HWC)."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = 256, int(256 * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize(size, Image.BILINEAR)  # PIL antialiases when shrinking, as torchvision's Resize does
    w, h = img.size
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    return ((np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD).astype(np.float32)


@pytest.mark.parametrize("path", photos(), ids=lambda p: p.name)
def test_close_to_torchvision(path: Path) -> None:
    ours = pyresnet.preprocess(path)
    assert ours.shape == (224, 224, 3) and ours.dtype == np.float32 and ours.flags.c_contiguous
    mad = float(np.abs(ours - torchvision_reference(path)).mean())
    assert mad <= 0.05, f"{path.name}: mean |ours - torchvision| = {mad:.3f}"


@pytest.fixture
def rgb() -> np.ndarray:
    yy, xx = np.mgrid[0:240, 0:320]
    return np.stack([xx % 256, yy % 256, (2 * xx + yy) % 256], -1).astype(np.uint8)


def test_image_kinds(rgb: np.ndarray, tmp_path: Path) -> None:
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb[:50, :40]).save(tmp_path / "small.jpg")
    for name in ("grey.png", "rgba.png", "palette.png", "small.jpg"):
        x = pyresnet.preprocess(tmp_path / name)
        assert x.shape == (224, 224, 3) and x.dtype == np.float32 and np.isfinite(x).all(), name
    grey = pyresnet.preprocess(tmp_path / "grey.png") * STD + MEAN
    assert np.allclose(grey[..., 0], grey[..., 1], atol=1e-5)  # grey replicated to three equal channels
    assert np.allclose(pyresnet.preprocess(tmp_path / "rgba.png"), pyresnet.preprocess(rgb))  # alpha dropped


def test_exif_orientation_is_applied(rgb: np.ndarray, tmp_path: Path) -> None:
    """A JPEG stored sideways with EXIF orientation 6 (rotate 90 clockwise) comes out upright."""
    stored = np.ascontiguousarray(np.rot90(rgb, 1))  # what the camera wrote: the scene turned left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(rgb).save(tmp_path / "upright.jpg", quality=95)
    diff = np.abs(pyresnet.preprocess(tmp_path / "rotated.jpg") - pyresnet.preprocess(tmp_path / "upright.jpg"))
    assert diff.mean() < 0.1


def test_unreadable_files(tmp_path: Path, rgb: np.ndarray) -> None:
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(rgb).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    for name in ("text.jpg", "empty.png", "truncated.jpg", "absent.jpg"):
        with pytest.raises(ImageError, match=name):
            pyresnet.preprocess(tmp_path / name)


def test_array_input(rgb: np.ndarray) -> None:
    assert pyresnet.preprocess(rgb).shape == (224, 224, 3)
    with pytest.raises(ImageError):
        pyresnet.preprocess(rgb.astype(np.float32))
