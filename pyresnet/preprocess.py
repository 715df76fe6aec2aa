"""Image loading and torchvision's ImageNet eval transform, with OpenCV instead of PIL.

RGB, resize the shorter side to 256, centre-crop 224, scale to [0, 1], normalise by ImageNet's mean and std.
Result: float32 (224, 224, 3), HWC, ready for any version's logits().
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .errors import ImageError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}

try:  # OpenCV would print its own warnings for a corrupt file; we report one clear error instead
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - older OpenCV builds
    pass

ImageLike = Union[str, os.PathLike, np.ndarray]


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3).

    Greyscale is replicated to three channels, alpha is dropped (as PIL's convert('RGB') does), palette PNGs are
    expanded, 16-bit images are scaled to 8 bits, and JPEG EXIF orientation is applied, so the photo is upright
    as a viewer shows it.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image not found: {p}")
    if not p.is_file():
        raise ImageError(f"not a file: {p}")
    data = np.fromfile(p, dtype=np.uint8)  # fromfile + imdecode also handles non-ASCII paths
    if data.size == 0:
        raise ImageError(f"cannot read {p}: the file is empty")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot read {p}: not an image file, or a corrupt one")
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:].tobytes():
        # libjpeg fills a truncated JPEG with grey and only warns; a silently wrong answer is worse than an error
        raise ImageError(f"cannot read {p}: the JPEG data is truncated")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_shorter(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """Scale so that the shorter side is `size`, keeping the aspect ratio as torchvision computes it.

    torchvision resizes a PIL image with a bilinear filter whose support grows with the shrink factor
    (antialiasing). cv2.INTER_LINEAR samples only 2x2 source pixels whatever the factor: on the photos in
    ../shared/images it lands 0.018-0.083 (mean absolute difference, normalised units) away from torchvision.
    cv2.INTER_AREA averages over the whole source footprint, close to that wide filter: 0.005-0.017 on the same
    photos (tests/test_preprocess.py holds every photo to <= 0.05). Enlarging needs no antialiasing, and there
    INTER_LINEAR is the same bilinear interpolation PIL uses.
    """
    h, w = rgb.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return rgb
    interp = cv2.INTER_AREA if new_short < short else cv2.INTER_LINEAR
    return cv2.resize(rgb, (new_w, new_h), interpolation=interp)


def center_crop(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """The central size x size window, offsets rounded as torchvision rounds them."""
    h, w = rgb.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return rgb[top : top + size, left : left + size]


def normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32, scaled to [0, 1] and normalised per channel."""
    return np.ascontiguousarray((rgb.astype(np.float32) / 255.0 - MEAN) / STD, dtype=np.float32)


def preprocess(image: ImageLike, resize: int = 256, crop: int = 224) -> np.ndarray:
    """A path (or a uint8 RGB array) -> the float32 (224, 224, 3) HWC input of every version."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"expected a uint8 RGB array (H, W, 3), got {image.dtype} {image.shape}")
        rgb = image
    else:
        rgb = read_rgb(image)
    return normalize(center_crop(resize_shorter(rgb, resize), crop))


def list_images(paths: list[str]) -> list[Path]:
    """Expand files and directories (their image files, sorted) into a list of image paths; checks existence."""
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"no image files in directory {p}")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise ImageError(f"image not found: {p}")
    return out
