"""Image loading and torchvision's ImageNet eval transform, with OpenCV instead of PIL.

RGB, resize the shorter side to 256, centre-crop 224, scale to [0, 1], normalise by ImageNet's mean and std.
Result: float32 (224, 224, 3), HWC, ready for any version's logits().
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

import cv2
import numpy as np

from ..errors import ImageError, PreprocessError
from .imagesize import SUFFIXES, HeaderError, read_size
from ..safeio import read_regular

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = frozenset(s for suffixes in SUFFIXES.values() for s in suffixes)  # every format read_size knows

try:  # OpenCV would print its own warnings for a corrupt file; we report one clear error instead
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - older OpenCV builds
    pass

ImageLike = Union[str, os.PathLike, np.ndarray]

ENV_MAX_PIXELS = "PYRESNET_MAX_IMAGE_PIXELS"  # as Pillow's Image.MAX_IMAGE_PIXELS: the largest image decoded
MAX_PIXELS = 50_000_000  # default: 50 megapixels, above any camera's photo (a 45 MP full-frame is 8192 x 5464)
MAX_ASPECT = 100  # longest side over shortest side, at most: the resize makes the shorter side 256, the longer
#                   one up to 25600; beyond that the resized image alone would be a bomb (a 1 x 10^6 strip)
BYTES_PER_PIXEL = 8  # no encoding of an image needs more than 16-bit RGBA uncompressed: 8 bytes per pixel...
FILE_SLACK = 16 << 20  # ... plus metadata (EXIF, ICC profile, thumbnails): an image file is at most this big


def pixel_limit(explicit: int | None = None) -> int:
    """The pixel limit: `explicit`, else $PYRESNET_MAX_IMAGE_PIXELS, else MAX_PIXELS."""
    value: object = explicit
    source = "max_pixels"
    if value is None:
        text = os.environ.get(ENV_MAX_PIXELS, "").strip()
        if not text:
            return MAX_PIXELS
        source = f"${ENV_MAX_PIXELS}"
        try:
            value = int(text)
        except ValueError:
            raise ImageError(f"{source} must be a whole number of pixels, got '{text}'") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 1 << 40:
        raise ImageError(f"{source} must be a whole number of pixels from 1 to 2^40, got {value!r}")
    return int(value)


def _check_size(w: int, h: int, what: str, limit: int) -> None:
    """Refuse sizes the pipeline cannot serve with bounded memory: empty, above the pixel limit, too elongated."""
    if w < 1 or h < 1:
        raise ImageError(f"{what} declares a size of {w} x {h} pixels")
    if w * h > limit:
        raise ImageError(f"{what} is {w} x {h} = {w * h / 1e6:.1f} megapixels, above the limit of "
                         f"{limit / 1e6:g} megapixels (raise it with --max-pixels or ${ENV_MAX_PIXELS})")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{what} is {w} x {h} pixels, an aspect ratio beyond {MAX_ASPECT}:1 that resizing its "
                         "shorter side to the network's input cannot serve")


_STDERR = threading.Lock()  # one capture of file descriptor 2 at a time


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 2 (where C libraries print) into a temporary file for the block; the yielded list
    then holds what was written (at most 64 kB). Where fd 2 cannot be duplicated, nothing is captured."""
    said: list[str] = []
    with _STDERR:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield said
            return
        try:
            with tempfile.TemporaryFile() as tmp:
                os.dup2(tmp.fileno(), 2)
                try:
                    yield said
                finally:
                    os.dup2(saved, 2)
                    tmp.seek(0)
                    said.append(tmp.read(1 << 16).decode("utf-8", "replace"))
        finally:
            os.close(saved)


def read_rgb(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3).

    The file must be a regular file no larger than an image within the pixel limit can be, and its header is read
    first (pyresnet.imagesize): an unsupported format, a size above `limit` pixels (default pixel_limit()) or an
    aspect ratio beyond MAX_ASPECT:1 is refused before OpenCV decodes anything.
    Greyscale is replicated to three channels, alpha is dropped (as PIL's convert('RGB') does), palette PNGs are
    expanded, 16-bit images are scaled to 8 bits, and JPEG EXIF orientation is applied, so the photo is upright
    as a viewer shows it.
    """
    p = Path(path)
    limit = pixel_limit(limit)
    raw = read_regular(p, BYTES_PER_PIXEL * limit + FILE_SLACK, ImageError, "image",
                       f"no image within the limit of {limit / 1e6:g} megapixels is that large")
    if not raw:
        raise ImageError(f"cannot read {p}: the file is empty")
    try:
        fmt, w, h = read_size(raw)
    except HeaderError as e:
        raise ImageError(f"cannot read {p}: {e}") from None
    _check_size(w, h, f"image {p}", limit)
    data = np.frombuffer(raw, dtype=np.uint8)
    if fmt == "PNG":  # libpng prints its errors on stderr itself: they become part of our one sentence instead
        with _stderr_captured() as said:
            bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        why = said[0].strip().replace("libpng error: ", "") if said else ""
        if bgr is not None and why:
            os.write(2, said[0].encode())  # a success: what was written (warnings, other threads) goes out after all
    else:
        bgr, why = cv2.imdecode(data, cv2.IMREAD_COLOR), ""
    if bgr is None:
        raise ImageError(f"cannot read {p}: not a readable {fmt} image, or a corrupt one" + (f" ({why})" if why else ""))
    if sorted(bgr.shape[:2]) != sorted((h, w)):  # EXIF rotation may swap the sides, nothing else may differ
        raise ImageError(f"cannot read {p}: its {fmt} header says {w} x {h} but it decodes to "
                         f"{bgr.shape[1]} x {bgr.shape[0]}")
    if fmt == "JPEG" and b"\xff\xd9" not in raw[-4096:]:
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


def check_sizes(resize: object, crop: object) -> tuple[int, int]:
    """resize and crop as whole numbers, 1 <= crop <= resize <= 4096; ValueError naming the one that is not."""
    for name, v in (("resize", resize), ("crop", crop)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 4096:
            raise PreprocessError(f"{name} must be a whole number of pixels from 1 to 4096, got {v!r}")
    if crop > resize:  # type: ignore[operator]
        raise PreprocessError(f"crop ({crop}) must not be larger than resize ({resize}): the centre crop is taken "
                              "from the resized image")
    return int(resize), int(crop)  # type: ignore[arg-type]


def preprocess(image: ImageLike, resize: int = 256, crop: int = 224, max_pixels: int | None = None) -> np.ndarray:
    """A path (or a uint8 RGB array) -> the float32 (crop, crop, 3) HWC input of every version (224 x 224 x 3).

    resize: the shorter side after resizing; crop: the centre square taken from it (crop <= resize, else
    ValueError). max_pixels: the largest image decoded (default $PYRESNET_MAX_IMAGE_PIXELS, else 50 megapixels).
    """
    resize, crop = check_sizes(resize, crop)
    limit = pixel_limit(max_pixels)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"expected a uint8 RGB array (H, W, 3), got {image.dtype} {image.shape}")
        _check_size(image.shape[1], image.shape[0], "the image array", limit)
        rgb = image
    else:
        rgb = read_rgb(image, limit)
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
