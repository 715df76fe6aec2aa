"""Preprocessing: torchvision's eval transform (PIL) reproduced with OpenCV, and every awkward image kind; the reduced
JPEG decode (1/2, 1/4, 1/8 scale in libjpeg's DCT) against the full one."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import pyresnet
from pyresnet.errors import ImageError, PreprocessError
from pyresnet.images import MEAN, STD, read_rgb, read_size
from pyresnet.images.imagesize import jpeg_orientation
from pyresnet.images.preprocess import (ENV_EXACT_DECODE, center_crop, normalize, reduction, resize_crop,
                                        resize_shorter)

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


@pytest.fixture(autouse=True)
def _default_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the default decode, whatever $PYRESNET_EXACT_DECODE the caller's shell has."""
    monkeypatch.delenv(ENV_EXACT_DECODE, raising=False)


@pytest.mark.parametrize("exact", [False, True], ids=["reduced", "exact"])
@pytest.mark.parametrize("path", photos(), ids=lambda p: p.name)
def test_close_to_torchvision(path: Path, exact: bool) -> None:
    ours = pyresnet.preprocess(path, exact_decode=exact)
    assert ours.shape == (224, 224, 3) and ours.dtype == np.float32 and ours.flags.c_contiguous
    mad = float(np.abs(ours - torchvision_reference(path)).mean())
    assert mad <= 0.05, f"{path.name}: mean |ours - torchvision| = {mad:.3f}"


def before(path: Path) -> np.ndarray:
    """preprocess() as it was before the reduced decode: every step on the whole decoded image."""
    rgb = center_crop(resize_shorter(read_rgb(path), 256), 224)
    return np.ascontiguousarray((rgb.astype(np.float32) / 255.0 - MEAN) / STD, dtype=np.float32)


@pytest.mark.parametrize("path", photos(), ids=lambda p: p.name)
def test_reduced_decode_on_the_photos(path: Path) -> None:
    """exact_decode=True gives the bits of the pipeline before the reduced decode; the default stays within 0.025
    of it (measured: 0.003-0.018 on the photos that reduce, bench/preprocess_cost.py) and is the same bits on a
    photo too small to reduce."""
    exact, reduced = pyresnet.preprocess(path, exact_decode=True), pyresnet.preprocess(path)
    assert exact.tobytes() == before(path).tobytes()
    if reduction(*read_size(path.read_bytes()), 256) == 1:
        assert reduced.tobytes() == exact.tobytes()
    else:
        assert float(np.abs(reduced - exact).mean()) <= 0.025


def scene(h: int, w: int) -> np.ndarray:
    """A photo-like picture: smooth shapes, edges and some texture, in colour."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    g = 128 + 90 * np.sin((xx + 2 * yy) / 91.0) + 30 * ((xx // 150 + yy // 150) % 2)
    b = np.where((xx - w / 3) ** 2 + (yy - h / 2) ** 2 < (min(h, w) / 4) ** 2, 220.0, 40.0) + 20 * np.sin(xx / 3.0)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


REDUCED_2 = cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION  # the EXIF orientation applied by pyresnet


class Spy:
    """Records the flags of every cv2.imdecode call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.flags: list[int] = []
        real = cv2.imdecode

        def imdecode(buf, flags):  # type: ignore[no-untyped-def]
            self.flags.append(flags)
            return real(buf, flags)

        monkeypatch.setattr(cv2, "imdecode", imdecode)


@pytest.fixture(scope="module")
def odd_jpegs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """1991 x 1499 JPEGs (odd sides, halved they round up to 996 x 750): upright, and stored turned left with EXIF
    orientation 6 (rotate 90 clockwise); a 1600 x 1200 PNG; a 700 x 500 JPEG, too small to reduce.
    At 1991 x 1499 the output size differs by its rounding: 340 x 256 from the file's size, 339 x 256 from the
    reduced 996 x 750."""
    d = tmp_path_factory.mktemp("odd")
    img = scene(1499, 1991)
    out = {"upright": d / "upright.jpg", "rotated": d / "rotated.jpg", "png": d / "big.png", "small": d / "small.jpg"}
    out["upright"].write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(img[..., ::-1], 1))).save(out["rotated"], exif=exif, quality=95)
    out["png"].write_bytes(cv2.imencode(".png", img[:1200, :1600], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes())
    out["small"].write_bytes(cv2.imencode(".jpg", img[:500, :700])[1].tobytes())
    return out


def test_a_large_jpeg_is_decoded_reduced(odd_jpegs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    reduced = pyresnet.preprocess(odd_jpegs["upright"])
    exact = pyresnet.preprocess(odd_jpegs["upright"], exact_decode=True)
    assert spy.flags == [REDUCED_2, cv2.IMREAD_COLOR]
    assert reduced.shape == exact.shape == (224, 224, 3)
    d = np.abs(reduced - exact)
    assert 0 < d.mean() <= 0.03, d.mean()  # not the same decode, and close to it (sizing the output from the
    #                                          reduced size, or cropping one pixel off, gives 0.1 or more here)
    # the reduced image rounds its sides up as libjpeg does; the output size comes from the file's own size
    small, full = read_rgb(odd_jpegs["upright"], reduce_for=256), read_rgb(odd_jpegs["upright"])
    assert small.shape == (750, 996, 3) and full.shape == (1499, 1991, 3)
    assert resize_shorter(small, 256, original=(1991, 1499)).shape == resize_shorter(full, 256).shape == (256, 340, 3)
    assert resize_shorter(small, 256).shape == (256, 339, 3)  # what the reduced size alone would have given


def test_exact_decode_is_an_option_and_an_environment_variable(odd_jpegs: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    p = odd_jpegs["upright"]
    exact, reduced = pyresnet.preprocess(p, exact_decode=True), pyresnet.preprocess(p, exact_decode=False)
    assert not np.array_equal(exact, reduced)
    for value, want in (("1", exact), ("true", exact), ("0", reduced), ("", reduced)):
        monkeypatch.setenv(ENV_EXACT_DECODE, value)
        assert np.array_equal(pyresnet.preprocess(p), want), value
    monkeypatch.setenv(ENV_EXACT_DECODE, "1")
    assert np.array_equal(pyresnet.preprocess(p, exact_decode=False), reduced)  # the argument wins
    assert read_rgb(p, reduce_for=256).shape == (1499, 1991, 3)
    monkeypatch.setenv(ENV_EXACT_DECODE, "maybe")
    with pytest.raises(PreprocessError, match=ENV_EXACT_DECODE):
        pyresnet.preprocess(p)
    with pytest.raises(PreprocessError, match="exact_decode"):
        pyresnet.preprocess(p, exact_decode="yes")  # type: ignore[arg-type]


def test_reduced_decode_applies_exif_orientation(odd_jpegs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The reduced decode turns a sideways JPEG upright as the full decode does, and sizes it from the turned size:
    the file stores 1499 x 1991, orientation 6 turns it to 1991 x 1499."""
    spy = Spy(monkeypatch)
    small = read_rgb(odd_jpegs["rotated"], reduce_for=256)
    assert spy.flags == [REDUCED_2]
    assert small.shape == (750, 996, 3) and read_rgb(odd_jpegs["rotated"]).shape == (1499, 1991, 3)
    reduced = pyresnet.preprocess(odd_jpegs["rotated"])
    exact = pyresnet.preprocess(odd_jpegs["rotated"], exact_decode=True)
    upright = pyresnet.preprocess(np.ascontiguousarray(scene(1499, 1991)[..., ::-1]))  # written as BGR
    assert np.abs(reduced - exact).mean() <= 0.03
    assert np.abs(exact - upright).mean() <= 0.03 and np.abs(reduced - upright).mean() <= 0.03


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_as_opencv_applies_it(orientation: int, tmp_path: Path) -> None:
    """Each of the 8 orientations, on a picture no turn or flip maps onto itself: the reduced decode (turned by
    pyresnet) is the full decode (turned by OpenCV) at a quarter of the size."""
    yy, xx = np.mgrid[0:96, 0:160]
    img = np.stack([xx * 255 // 160, yy * 255 // 96, np.where((xx < 40) & (yy < 30), 255, 60)], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=95)
    full, small = read_rgb(tmp_path / "o.jpg"), read_rgb(tmp_path / "o.jpg", reduce_for=16)  # 96 / 4 = 24 >= 1.5 x 16
    assert small.shape == (full.shape[0] // 4, full.shape[1] // 4, 3)
    shrunk = cv2.resize(full, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - small).mean() < 4
    for wrong in (np.ascontiguousarray(small[::-1]), np.ascontiguousarray(small[:, ::-1])):
        assert np.abs(shrunk.astype(int) - wrong).mean() > 20


def test_jpeg_orientation_reads_what_opencv_reads() -> None:
    def jpeg(*segments: bytes) -> bytes:
        body = b"".join(b"\xff\xe1" + (len(s) + 2).to_bytes(2, "big") + s for s in segments)
        return b"\xff\xd8" + body + b"\xff\xda\x00\x02"

    def exif(value: int, order: bytes = b"MM") -> bytes:
        e = ">" if order == b"MM" else "<"
        return (b"Exif\0\0" + order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1)
                + struct.pack(e + "HHIHH", 0x0112, 3, 1, value, 0))

    xmp = b"http://ns.adobe.com/xap/1.0/\0<x/>"
    assert jpeg_orientation(jpeg()) == 1 and jpeg_orientation(jpeg(xmp)) == 1
    assert jpeg_orientation(jpeg(exif(6))) == 6 and jpeg_orientation(jpeg(exif(8, b"II"))) == 8
    assert jpeg_orientation(jpeg(exif(3), xmp)) == 3  # XMP after the EXIF, as cameras and editors write them
    assert jpeg_orientation(jpeg(exif(9))) == 9  # out of range: OpenCV leaves the image as stored, so does _orient
    # where OpenCV versions could disagree, or OpenCV could stop short, the answer is None (a full decode decides)
    assert jpeg_orientation(jpeg(xmp, exif(6))) is None  # OpenCV 4 reads the first APP1 only
    assert jpeg_orientation(jpeg(exif(6), exif(3))) is None
    assert jpeg_orientation(jpeg(exif(6)[:-6])) is None  # the entry runs past the segment
    assert jpeg_orientation(jpeg(exif(6))[:-4]) is None  # no start of scan
    model = struct.pack(">HHII", 0x0110, 2, 40, 1000)  # a 40-character Model string said to lie past the end
    bad = b"Exif\0\0MM" + struct.pack(">HIH", 42, 8, 2) + model + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    assert jpeg_orientation(jpeg(bad)) is None


def test_small_images_and_other_formats_decode_in_full(odd_jpegs: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    for name in ("small", "png"):
        assert pyresnet.preprocess(odd_jpegs[name]).tobytes() == \
            pyresnet.preprocess(odd_jpegs[name], exact_decode=True).tobytes(), name
    assert spy.flags == [cv2.IMREAD_COLOR] * 4
    assert reduction("PNG", 4000, 4000, 256) == reduction("JPEG", 700, 500, 256) == 1
    # the largest factor whose reduced shorter side stays >= 1.5 x 256 = 384, libjpeg rounding up
    assert [reduction("JPEG", 5000, s, 256) for s in (766, 767, 1532, 1533, 3064, 3065)] == [1, 2, 2, 4, 4, 8]


def test_pixel_limit_refuses_before_decoding(odd_jpegs: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is checked on the header's size, not the reduced one, and nothing is decoded when it refuses."""
    spy = Spy(monkeypatch)
    with pytest.raises(ImageError, match="3.0 megapixels, above the limit of 1 megapixels"):
        pyresnet.preprocess(odd_jpegs["upright"], max_pixels=1_000_000)  # the reduced 996 x 750 would fit
    data = bytearray(cv2.imencode(".jpg", scene(64, 64))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") * 2  # declares 30000 x 30000, holds 64 x 64
    (tmp_path / "bomb.jpg").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="megapixels"):
        pyresnet.preprocess(tmp_path / "bomb.jpg")
    assert spy.flags == []


@pytest.mark.parametrize("h, w, size, crop, original", [
    (500, 800, 256, 224, None), (510, 500, 256, 224, None), (1499, 1991, 256, 224, None),
    (750, 996, 256, 224, (1991, 1499)), (996, 750, 256, 224, (1499, 1991)), (390, 390, 256, 224, (3119, 3119)),
    (512, 768, 256, 224, None), (300, 257, 256, 100, None), (123, 456, 256, 224, None), (2000, 40, 30, 17, None),
])
def test_resize_crop_is_resize_then_crop(h: int, w: int, size: int, crop: int, original: tuple[int, int] | None
                                         ) -> None:
    """The cropped two-pass area resize gives the bits of cv2.resize on the whole image, then the crop: at whole
    and fractional factors, enlarging, after a reduced decode, portrait and landscape."""
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got, want = resize_crop(img, size, crop, original), center_crop(resize_shorter(img, size, original), crop)
    assert got.shape == want.shape == (crop, crop, 3) and np.array_equal(got, want)


def test_normalize_is_the_arithmetic() -> None:
    x = np.arange(256, dtype=np.uint8)[None, :, None].repeat(3, 2)
    want = np.ascontiguousarray((x.astype(np.float32) / 255.0 - MEAN) / STD, dtype=np.float32)
    assert normalize(x).tobytes() == want.tobytes()


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


def test_preprocess_bytes_is_preprocess_of_the_file(odd_jpegs: dict[str, Path], tmp_path: Path,
                                                    rgb: np.ndarray) -> None:
    """A file's content read elsewhere (Ray's read_binary_files) gives the bits preprocess(path) gives, reduced
    decode, EXIF and all, and the same sentences for what cannot be read; the file-size cap holds on bytes too."""
    from pyresnet.images import preprocess_bytes

    for p in [*photos(), *odd_jpegs.values()]:
        for exact in (False, True):
            want = pyresnet.preprocess(p, exact_decode=exact)
            assert preprocess_bytes(p.read_bytes(), p, exact_decode=exact).tobytes() == want.tobytes(), p
    Image.fromarray(rgb).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    for name, content in (("text.jpg", b"hello"), ("empty.png", b""), ("truncated.jpg", data[: len(data) // 2])):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageError) as from_file:
            pyresnet.preprocess(tmp_path / name)
        with pytest.raises(ImageError) as from_bytes:
            preprocess_bytes(content, tmp_path / name)
        assert str(from_bytes.value) == str(from_file.value)
    with pytest.raises(ImageError, match="more than the limit"):
        preprocess_bytes(b"\0" * ((16 << 20) + 9), "big.jpg", max_pixels=1)  # 8 bytes a pixel + 16 MiB, plus one


def test_list_images_expands_a_pattern(tmp_path: Path) -> None:
    """A path that does not exist and holds a wildcard is expanded as the shell would (for `run 'DIR/*.jpg' --ray`,
    where no shell did); no match is one sentence naming the pattern."""
    from pyresnet.images import list_images

    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "b.png", "notes.txt", "sub/c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([str(tmp_path / "*.jpg")])] == ["a.jpg"]
    assert [p.name for p in list_images([str(tmp_path / "**" / "*.jpg")])] == ["a.jpg", "c.jpg"]
    assert [p.name for p in list_images([str(tmp_path / "s*")])] == ["c.jpg"]  # a folder matched: its images
    with pytest.raises(ImageError, match=r"no file matches .*\*\.gif"):
        list_images([str(tmp_path / "*.gif")])
