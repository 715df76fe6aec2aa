"""Image loading and torchvision's ImageNet eval transform, with OpenCV instead of PIL.

RGB, resize the shorter side to 256, centre-crop 224, scale to [0, 1], normalise by ImageNet's mean and std.
Result: float32 (224, 224, 3), HWC, ready for any version's logits().

A JPEG much larger than the resize target is decoded at 1/2, 1/4 or 1/8 scale inside libjpeg's inverse DCT
(OpenCV's IMREAD_REDUCED_COLOR_*, what Pillow's draft() does) and then area-resized as a full decode would be. The
reduction keeps the shorter side at least REDUCE_MARGIN times the target, and the output size comes from the file's
own size, so the crop covers the same region; the result stays close to the full decode's and as close to
torchvision (tests/test_preprocess.py holds both; bench/preprocess_cost.py measures the CPU and the differences, and
the README quotes its committed results).
exact_decode=True, or $PYRESNET_EXACT_DECODE=1, decodes every image in full, for exact comparisons.
"""

from __future__ import annotations

import glob
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
from .imagesize import SUFFIXES, HeaderError, jpeg_orientation, read_size
from ..safeio import describe_size, read_regular

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = frozenset(s for suffixes in SUFFIXES.values() for s in suffixes)  # every format read_size knows

try:  # OpenCV would print its own warnings for a corrupt file; we report one clear error instead
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - older OpenCV builds
    pass

ImageLike = Union[str, os.PathLike, np.ndarray]

ENV_EXACT_DECODE = "PYRESNET_EXACT_DECODE"  # 1: decode every image in full (the default of exact_decode)
ENV_MAX_PIXELS = "PYRESNET_MAX_IMAGE_PIXELS"  # as Pillow's Image.MAX_IMAGE_PIXELS: the largest image decoded
MAX_PIXELS = 50_000_000  # default: 50 megapixels, above any camera's photo (a 45 MP full-frame is 8192 x 5464)
MAX_ASPECT = 100  # longest side over shortest side, at most: the resize makes the shorter side 256, the longer
#                   one up to 25600; beyond that the resized image alone would be a bomb (a 1 x 10^6 strip)
BYTES_PER_PIXEL = 8  # no encoding of an image needs more than 16-bit RGBA uncompressed: 8 bytes per pixel...
FILE_SLACK = 16 << 20  # ... plus metadata (EXIF, ICC profile, thumbnails): an image file is at most this big
# A JPEG is decoded at 1/f scale (f = 8, 4 or 2, the largest that fits) only while its shorter side stays at least
# REDUCE_MARGIN times the resize target: closer to it, the area resize averages barely more than one reduced pixel
# per output pixel and the result drifts from the full decode's as far as the bound the tests hold against
# torchvision (README.md, "Decoding only what the resize needs", says what was measured).
REDUCE_MARGIN = 1.5
# OpenCV 5 does not apply the EXIF orientation to a reduced decode (IMREAD_COLOR alone does): no version is asked
# to, and _orient() applies it as OpenCV's full decode does (imagesize.jpeg_orientation() reads it)
_REDUCED = {f: flag | cv2.IMREAD_IGNORE_ORIENTATION for f, flag in
            ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


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


def exact_decode_default(explicit: object = None) -> bool:
    """Whether to decode images in full: `explicit` (a bool), else $PYRESNET_EXACT_DECODE (1/0, true/false, yes/no,
    on/off), else False (a large JPEG is decoded at a reduced scale, see reduction())."""
    if explicit is not None:
        if not isinstance(explicit, (bool, np.bool_)):
            raise PreprocessError(f"exact_decode must be True, False or None, got {explicit!r}")
        return bool(explicit)
    text = os.environ.get(ENV_EXACT_DECODE, "").strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise PreprocessError(f"${ENV_EXACT_DECODE} must be 1 (decode images in full) or 0, got '{text}'")


def reduction(fmt: str, w: int, h: int, shorter: int | None) -> int:
    """The scale divisor a `fmt` image of w x h pixels is decoded at when it will be resized to `shorter` pixels on
    its shorter side: the largest f of 8, 4, 2 whose reduced shorter side, ceil(min(w, h) / f) as libjpeg rounds,
    is still at least REDUCE_MARGIN * shorter; 1 (a full decode) for every format but JPEG and without a target."""
    if fmt != "JPEG" or shorter is None:
        return 1
    for f in (8, 4, 2):
        if -(-min(w, h) // f) >= REDUCE_MARGIN * shorter:
            return f
    return 1


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


def max_file_bytes(limit: int) -> int:
    """The largest image file read under a pixel limit: BYTES_PER_PIXEL per allowed pixel plus FILE_SLACK."""
    return BYTES_PER_PIXEL * limit + FILE_SLACK


def _too_large_hint(limit: int) -> str:
    return f"no image within the limit of {limit / 1e6:g} megapixels is that large"


def _decode(path: str | os.PathLike, limit: int, shorter: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """read_rgb()'s work, in OpenCV's BGR order: (bgr, (width, height)), the size being the file's own after its
    EXIF orientation, whatever scale it was decoded at (shorter: see read_rgb's reduce_for; None decodes in full)."""
    p = Path(path)
    raw = read_regular(p, max_file_bytes(limit), ImageError, "image", _too_large_hint(limit))
    return _decode_raw(raw, p, limit, shorter)


def _decode_raw(raw: bytes, p: Path, limit: int, shorter: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """_decode() on the content of file p, already read (p only names it in the messages)."""
    if len(raw) > max_file_bytes(limit):  # read_regular refuses these; bytes read by someone else are held to it here
        raise ImageError(f"image {p} has {describe_size(len(raw))}, more than the limit of "
                         f"{describe_size(max_file_bytes(limit))} ({_too_large_hint(limit)})")
    if not raw:
        raise ImageError(f"cannot read {p}: the file is empty")
    try:
        fmt, w, h = read_size(raw)
    except HeaderError as e:
        raise ImageError(f"cannot read {p}: {e}") from None
    _check_size(w, h, f"image {p}", limit)  # on the header's size, before anything is decoded
    data = np.frombuffer(raw, dtype=np.uint8)
    f = reduction(fmt, w, h, shorter)
    orientation = jpeg_orientation(raw) if f > 1 else None
    if orientation is None:  # no reduction; or an EXIF orientation that only OpenCV's own full decode can tell
        f, orientation = 1, 1
    if fmt == "PNG":  # libpng prints its errors on stderr itself: they become part of our one sentence instead
        with _stderr_captured() as said:
            bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        why = said[0].strip().replace("libpng error: ", "") if said else ""
        if bgr is not None and why:
            os.write(2, said[0].encode())  # a success: what was written (warnings, other threads) goes out after all
    else:
        bgr, why = cv2.imdecode(data, _REDUCED.get(f, cv2.IMREAD_COLOR)), ""
    if bgr is None:
        raise ImageError(f"cannot read {p}: not a readable {fmt} image, or a corrupt one" + (f" ({why})" if why else ""))
    rw, rh = -(-w // f), -(-h // f)  # libjpeg's scaled size, each side rounded up
    got = (bgr.shape[1], bgr.shape[0])
    if got not in ((rw, rh), (rh, rw)) or (f > 1 and got != (rw, rh)):  # EXIF rotation may swap the sides (in a
        scaled = f" (at 1/{f} scale, {rw} x {rh})" if f > 1 else ""       # full decode), nothing else may differ
        raise ImageError(f"cannot read {p}: its {fmt} header says {w} x {h}{scaled} but it decodes to "
                         f"{got[0]} x {got[1]}")
    if fmt == "JPEG" and b"\xff\xd9" not in raw[-4096:]:
        # libjpeg fills a truncated JPEG with grey and only warns; a silently wrong answer is worse than an error
        raise ImageError(f"cannot read {p}: the JPEG data is truncated")
    if f > 1:  # turned here: by the orientation, not by the sides (1/8 of 3119 x 3118 is 390 x 390)
        return _orient(bgr, orientation), ((h, w) if orientation in (5, 6, 7, 8) else (w, h))
    return bgr, ((w, h) if got == (w, h) else (h, w))


def _orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image decoded as stored upright by its EXIF orientation, as OpenCV's ExifTransform does (1 to 8;
    any other value: as stored)."""
    if orientation in (5, 6, 7, 8):
        img = cv2.transpose(img)
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    return img if flip is None else cv2.flip(img, flip)


def read_rgb(path: str | os.PathLike, limit: int | None = None, *, reduce_for: int | None = None,
             exact_decode: bool | None = None) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3).

    The file must be a regular file no larger than an image within the pixel limit can be, and its header is read
    first (pyresnet.imagesize): an unsupported format, a size above `limit` pixels (default pixel_limit()) or an
    aspect ratio beyond MAX_ASPECT:1 is refused before OpenCV decodes anything.
    Greyscale is replicated to three channels, alpha is dropped (as PIL's convert('RGB') does), palette PNGs are
    expanded, 16-bit images are scaled to 8 bits, and JPEG EXIF orientation is applied, so the photo is upright
    as a viewer shows it.

    reduce_for: the shorter side the caller will resize the image to. Given, a JPEG whose shorter side is at least
    2 * REDUCE_MARGIN times that is decoded at 1/2, 1/4 or 1/8 scale in libjpeg's DCT (reduction()), each side
    rounded up: the image returned is then smaller than the file's, its shorter side still at least
    REDUCE_MARGIN * reduce_for. None (the default): always the full size, as the file declares it.
    exact_decode: True decodes in full even with reduce_for; None (the default) takes $PYRESNET_EXACT_DECODE
    (1: in full), else False.
    """
    if reduce_for is not None and (isinstance(reduce_for, bool) or not isinstance(reduce_for, (int, np.integer))
                                   or reduce_for < 1):
        raise PreprocessError(f"reduce_for must be a whole number of pixels or None, got {reduce_for!r}")
    shorter = None if exact_decode_default(exact_decode) else reduce_for
    return cv2.cvtColor(_decode(path, pixel_limit(limit), shorter)[0], cv2.COLOR_BGR2RGB)


def resize_shorter(rgb: np.ndarray, size: int = 256, original: tuple[int, int] | None = None) -> np.ndarray:
    """Scale so that the shorter side is `size`, keeping the aspect ratio as torchvision computes it.

    original: the (width, height) whose aspect ratio sets the output size, when `rgb` is that image decoded at a
    reduced scale (its sides rounded up), so that the output has the size, and a crop of it the region, that the
    full image gives; default: rgb's own size.

    torchvision resizes a PIL image with a bilinear filter whose support grows with the shrink factor
    (antialiasing). cv2.INTER_LINEAR samples only 2x2 source pixels whatever the factor: on the photos in
    ../shared/images it lands 0.018-0.083 (mean absolute difference, normalised units) away from torchvision.
    cv2.INTER_AREA averages over the whole source footprint, close to that wide filter: 0.005-0.017 on the same
    photos (tests/test_preprocess.py holds every photo to <= 0.05). Enlarging needs no antialiasing, and there
    INTER_LINEAR is the same bilinear interpolation PIL uses.
    """
    h, w = rgb.shape[:2]
    new_w, new_h = _resized_size(rgb, size, original)
    if (new_w, new_h) == (w, h):
        return rgb
    interp = cv2.INTER_AREA if min(new_w, new_h) < min(w, h) else cv2.INTER_LINEAR
    return cv2.resize(rgb, (new_w, new_h), interpolation=interp)


def _resized_size(rgb: np.ndarray, size: int, original: tuple[int, int] | None) -> tuple[int, int]:
    h, w = rgb.shape[:2]
    ow, oh = original if original is not None else (w, h)
    short, long = (ow, oh) if ow <= oh else (oh, ow)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if ow <= oh else (new_long, new_short)


_ROWS = 128  # resize_crop() widens this many source rows at a time to float32: memory stays bounded
_DOWN_BYTES = 64 << 20  # and its float32 (height, crop, 3) buffer at most this big (a 1:100 strip would need more)


def resize_crop(rgb: np.ndarray, size: int = 256, crop: int = 224, original: tuple[int, int] | None = None
                ) -> np.ndarray:
    """center_crop(resize_shorter(rgb, size, original), crop), bit for bit, computing little beyond the crop.

    OpenCV's INTER_AREA (when the scale factors are not whole numbers) averages each source row across in float32
    and then sums the rows down with their weights, rounding once at the end. So the same two passes, run apart
    in float32 (a resize across with the height kept, then one down with the width kept), give the same bits;
    and between them the columns outside the crop can be dropped, and the rows that no row of the crop draws on
    need not be averaged across at all (they stay zero: the pass down reads them only for rows cropped away).
    A third less work on a landscape photo; a whole-number factor, enlarging, an exotic array or an image over
    some 25000 rows high take cv2.resize itself.
    """
    h, w = rgb.shape[:2]
    new_w, new_h = _resized_size(rgb, size, original)
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    sx, sy = 1.0 / (new_w / w), 1.0 / (new_h / h)  # the scale factors as cv2.resize computes them
    if (rgb.ndim != 3 or rgb.dtype != np.uint8 or not (sx > 1 and sy > 1)
            or abs(sx - round(sx)) < 1e-9 or abs(sy - round(sy)) < 1e-9  # whole: OpenCV's other ("fast") path
            or h * crop * rgb.shape[2] * 4 > _DOWN_BYTES):
        return center_crop(resize_shorter(rgb, size, original), crop)
    r0 = max(0, int(np.floor(top * sy)) - 1)  # the source rows that the crop's rows average, and one more each side
    r1 = min(h, int(np.ceil((top + crop) * sy)) + 1)
    across = np.zeros((h, crop, rgb.shape[2]), np.float32)
    for r in range(r0, r1, _ROWS):
        rows = rgb[r : min(r + _ROWS, r1)].astype(np.float32)
        wide = cv2.resize(rows, (new_w, len(rows)), interpolation=cv2.INTER_AREA)
        across[r : r + len(rows)] = wide[:, left : left + crop]
    down = cv2.resize(across, (crop, new_h), interpolation=cv2.INTER_AREA)[top : top + crop]
    return np.clip(np.rint(down), 0, 255).astype(np.uint8)  # OpenCV's saturate_cast: to nearest, ties to even


def center_crop(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """The central size x size window, offsets rounded as torchvision rounds them."""
    h, w = rgb.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return rgb[top : top + size, left : left + size]


# normalize()'s arithmetic on every uint8 value of each channel, (1, 256, 3): one table look-up per value instead
_NORMALIZED = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] / 255.0 - MEAN) / STD)[None],
                                   dtype=np.float32)


def normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32, scaled to [0, 1] and normalised per channel: (rgb / 255 - MEAN) / STD in float32,
    looked up in a table of those values (the same bits, a tenth of the time)."""
    return np.ascontiguousarray(cv2.LUT(rgb, _NORMALIZED), dtype=np.float32)


def check_sizes(resize: object, crop: object) -> tuple[int, int]:
    """resize and crop as whole numbers, 1 <= crop <= resize <= 4096; ValueError naming the one that is not."""
    for name, v in (("resize", resize), ("crop", crop)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 4096:
            raise PreprocessError(f"{name} must be a whole number of pixels from 1 to 4096, got {v!r}")
    if crop > resize:  # type: ignore[operator]
        raise PreprocessError(f"crop ({crop}) must not be larger than resize ({resize}): the centre crop is taken "
                              "from the resized image")
    return int(resize), int(crop)  # type: ignore[arg-type]


def preprocess(image: ImageLike, resize: int = 256, crop: int = 224, max_pixels: int | None = None,
               exact_decode: bool | None = None) -> np.ndarray:
    """A path (or a uint8 RGB array) -> the float32 (crop, crop, 3) HWC input of every version (224 x 224 x 3).

    resize: the shorter side after resizing; crop: the centre square taken from it (crop <= resize, else
    ValueError). max_pixels: the largest image decoded (default $PYRESNET_MAX_IMAGE_PIXELS, else 50 megapixels).
    exact_decode: False decodes a JPEG much larger than `resize` at 1/2, 1/4 or 1/8 scale in libjpeg's DCT (its
    shorter side still at least REDUCE_MARGIN * resize), then area-resizes it to the size the full image gives:
    close to the full decode's result, at a fraction of the CPU. True decodes every image in full
    (for exact comparisons). None (the default): $PYRESNET_EXACT_DECODE (1: in full), else False. Images that are
    not JPEGs, JPEGs too small to reduce, and arrays give the same result either way.
    """
    resize, crop = check_sizes(resize, crop)
    limit = pixel_limit(max_pixels)
    exact = exact_decode_default(exact_decode)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"expected a uint8 RGB array (H, W, 3), got {image.dtype} {image.shape}")
        _check_size(image.shape[1], image.shape[0], "the image array", limit)
        return normalize(resize_crop(image, resize, crop))
    bgr, size = _decode(image, limit, None if exact else resize)
    # Resizing and cropping treat the channels alike: BGR -> RGB on the crop alone gives the same bits, cheaper
    return normalize(cv2.cvtColor(resize_crop(bgr, resize, crop, original=size), cv2.COLOR_BGR2RGB))


def preprocess_bytes(data: bytes | bytearray | memoryview, name: str | os.PathLike, resize: int = 256,
                     crop: int = 224, max_pixels: int | None = None, exact_decode: bool | None = None) -> np.ndarray:
    """preprocess() of an image file whose content was read elsewhere (e.g. by Ray's read_binary_files): the same
    checks (the file size an image within the pixel limit can have, the header's format and size before decoding)
    and the same bits as preprocess(name) on that file. `name` only names the image in error sentences."""
    resize, crop = check_sizes(resize, crop)
    limit = pixel_limit(max_pixels)
    exact = exact_decode_default(exact_decode)
    bgr, size = _decode_raw(bytes(data), Path(name), limit, None if exact else resize)
    return normalize(cv2.cvtColor(resize_crop(bgr, resize, crop, original=size), cv2.COLOR_BGR2RGB))


def list_images(paths: list[str]) -> list[Path]:
    """Expand files and directories (their image files, sorted) into a list of image paths; checks existence. A path
    that does not exist but holds a wildcard (*, ?, [) is a pattern, expanded as the shell would (sorted; ** spans
    folders), each match then taken as if named: a folder by its images, a file whatever its name."""
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if not p.exists() and not p.is_symlink() and any(c in str(s) for c in "*?["):
            matches = sorted(glob.glob(str(s), recursive=True))
            if not matches:
                raise ImageError(f"no file matches {s}")
            out += list_images(matches)
            continue
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
