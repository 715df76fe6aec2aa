"""The width and height an image file declares, read from its header before anything is decoded.

A decoder allocates what the header declares: a PNG of a few hundred bytes can declare 30000 x 30000 pixels and
make the decoder ask for 2.7 GB. So preprocess reads the header first, with this module, and refuses what is too
large before OpenCV sees the file. Formats: JPEG, PNG, GIF, BMP, WebP, TIFF and PNM (PBM/PGM/PPM); anything else is
refused as unsupported, so no file reaches the decoder without its size known. Every read is bounds-checked: a
truncated or malformed header is an error, never an exception from slicing.

Also a JPEG's EXIF orientation (jpeg_orientation()), which preprocess applies itself to a JPEG decoded at a
reduced scale.
"""

from __future__ import annotations

import struct

FORMATS = "JPEG, PNG, GIF, BMP, WebP, TIFF, PBM/PGM/PPM"
# The file name suffixes of those formats: what a folder listing takes as an image (a file named on the command
# line is taken whatever its name; read_size() decides by its content). One list, for every command.
SUFFIXES = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"), "PNG": (".png",), "GIF": (".gif",), "BMP": (".bmp", ".dib"),
    "WebP": (".webp",), "TIFF": (".tif", ".tiff"), "PNM": (".pbm", ".pgm", ".ppm", ".pnm"),
}


class HeaderError(ValueError):
    """The header is missing, truncated or not one of FORMATS."""


def _u16(data: bytes, at: int, endian: str = ">") -> int:
    if at + 2 > len(data):
        raise HeaderError("the header is truncated")
    return struct.unpack_from(endian + "H", data, at)[0]


def _u32(data: bytes, at: int, endian: str = ">") -> int:
    if at + 4 > len(data):
        raise HeaderError("the header is truncated")
    return struct.unpack_from(endian + "I", data, at)[0]


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> tuple[int, int]:
    # Walk the marker segments up to the first start-of-frame, which holds the frame size (libjpeg uses the first).
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            raise HeaderError("a JPEG marker is malformed")
        while i < len(data) and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= len(data):
            break
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before the data
            raise HeaderError("the JPEG has no frame header before its data")
        length = _u16(data, i)
        if length < 2:
            raise HeaderError("a JPEG segment has an impossible length")
        if marker in _SOF:
            return _u16(data, i + 5), _u16(data, i + 3)  # width, height
        i += length
    raise HeaderError("the JPEG ends before its frame header")


def _png(data: bytes) -> tuple[int, int]:
    if len(data) < 24:
        raise HeaderError("the header is truncated")
    if data[12:16] != b"IHDR":
        raise HeaderError("the PNG does not start with its IHDR chunk")
    return _u32(data, 16), _u32(data, 20)


def _gif(data: bytes) -> tuple[int, int]:
    # The logical screen, and the first image's own size, which a decoder may also allocate: the larger of each.
    w, h = _u16(data, 6, "<"), _u16(data, 8, "<")
    if len(data) < 13:
        raise HeaderError("the header is truncated")
    i = 13 + (3 * (2 << (data[10] & 7)) if data[10] & 0x80 else 0)
    while i < len(data):
        block = data[i]
        if block == 0x2C:  # image descriptor
            return max(w, _u16(data, i + 5, "<")), max(h, _u16(data, i + 7, "<"))
        if block != 0x21 or i + 2 > len(data):  # only extensions may come before the first image
            break
        i += 2
        while i < len(data) and data[i]:  # the extension's sub-blocks
            i += 1 + data[i]
        i += 1
    raise HeaderError("the GIF has no image")


def _bmp(data: bytes) -> tuple[int, int]:
    header = _u32(data, 14, "<")
    if header == 12:  # OS/2 BITMAPCOREHEADER
        return _u16(data, 18, "<"), _u16(data, 20, "<")
    w, h = struct.unpack_from("<ii", data, 18) if len(data) >= 26 else (None, None)
    if w is None:
        raise HeaderError("the header is truncated")
    return abs(w), abs(h)  # a negative height means top-down rows


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas size, 24 bits each, minus one
        if len(data) < 30:
            raise HeaderError("the header is truncated")
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":  # lossless: 14 bits each, minus one, after a signature byte
        if len(data) < 25 or data[20] != 0x2F:
            raise HeaderError("the lossless WebP header is malformed")
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":  # lossy: 14 bits each after the key frame's start code
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("the lossy WebP header is malformed")
        return _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF
    raise HeaderError("the WebP holds no image chunk this reader knows")


def _tiff(data: bytes) -> tuple[int, int]:
    e = "<" if data[:2] == b"II" else ">"
    ifd = _u32(data, 4, e)
    count = _u16(data, ifd, e)
    size: dict[int, int] = {}
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind = _u16(data, at, e), _u16(data, at + 2, e)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            size[tag] = _u16(data, at + 8, e) if kind == 3 else _u32(data, at + 8, e)
    if 256 not in size or 257 not in size:
        raise HeaderError("the TIFF's first image has no width or height")
    return size[256], size[257]


def _pnm(data: bytes) -> tuple[int, int]:
    # P1-P6: magic, then width and height as decimal tokens, with '#' comments to the end of a line.
    tokens: list[int] = []
    i = 2
    while len(tokens) < 2:
        while i < len(data) and (data[i : i + 1].isspace() or data[i] == ord("#")):
            if data[i] == ord("#"):
                while i < len(data) and data[i] not in b"\r\n":
                    i += 1
            else:
                i += 1
        j = i
        while j < len(data) and data[j : j + 1].isdigit() and j - i < 12:
            j += 1
        if j == i or (j < len(data) and not data[j : j + 1].isspace()):
            raise HeaderError("the PNM header is malformed")
        tokens.append(int(data[i:j]))
        i = j
    return tokens[0], tokens[1]


def read_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) that the image file `data` declares; HeaderError if it cannot be told."""
    if data[:3] == b"\xff\xd8\xff":
        fmt, size = "JPEG", _jpeg(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        fmt, size = "PNG", _png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        fmt, size = "GIF", _gif(data)
    elif data[:2] == b"BM":
        fmt, size = "BMP", _bmp(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt, size = "WebP", _webp(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        fmt, size = "TIFF", _tiff(data)
    elif len(data) >= 3 and data[0] == ord("P") and data[1] in b"123456" and data[2:3].isspace():
        fmt, size = "PNM", _pnm(data)
    else:
        raise HeaderError(f"not an image in a supported format ({FORMATS})")
    return fmt, size[0], size[1]


# EXIF orientation, for a JPEG decoded at a reduced scale: OpenCV turns a photo upright by its EXIF orientation when it
# decodes it in full, but (5.x) not when it decodes it reduced, so there the caller turns it, by this reading. It
# follows OpenCV's reader (imgcodecs/src/exif.cpp): the "Exif\0\0" APP1 segment, its first directory (IFD0), the
# first Orientation entry (0x0112), the 16-bit value at its value field; and where OpenCV's versions could read a
# file differently, or their reader would stop before the orientation (an entry pointing outside the segment), the
# answer is None and the caller decodes in full, letting OpenCV decide.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}  # TIFF field types
_RATIONALS = {0x011A: 1, 0x011B: 1, 0x013E: 2, 0x013F: 6, 0x0211: 3, 0x0214: 6}  # OpenCV reads these many, whatever
_STRINGS = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x8298}  # the count says (and strings of `count` bytes)


def _tiff_orientation(t: bytes) -> int | None:
    if len(t) < 8 or t[:2] not in (b"II", b"MM"):
        return None
    e = "<" if t[:2] == b"II" else ">"
    if _u16(t, 2, e) != 42:
        return None
    ifd = _u32(t, 4, e)
    if ifd + 2 > len(t):
        return None
    n = _u16(t, ifd, e)
    if ifd + 2 + 12 * n > len(t):
        return None
    orientation = None
    for k in range(n):
        at = ifd + 2 + 12 * k
        tag, kind, count = _u16(t, at, e), _u16(t, at + 2, e), _u32(t, at + 4, e)
        if kind not in _TYPE_SIZE:
            return None
        out_of_line = [(_TYPE_SIZE[kind] * count, count > 4 // _TYPE_SIZE[kind])]
        if tag in _RATIONALS:
            out_of_line.append((8 * _RATIONALS[tag], True))
        if tag in _STRINGS:
            out_of_line.append((count, count > 4))
        for size, elsewhere in out_of_line:
            if (_u32(t, at + 8, e) if elsewhere else at + 8) + size > len(t):
                return None  # OpenCV's reader would stop here (or read past the segment)
        if tag == 0x0112 and orientation is None:
            orientation = _u16(t, at + 8, e)
    return orientation if orientation is not None else 1


def jpeg_orientation(data: bytes) -> int | None:
    """The EXIF orientation of the JPEG file `data` as OpenCV applies it when decoding in full: 1 to 8 (the TIFF
    values; 1, upright, when there is no EXIF or no Orientation entry; any other value is left as it is, and OpenCV
    applies nothing for it), or None when the reading is not certain (a malformed or truncated segment, several
    Exif segments, another APP1 segment before the Exif one): then only a full decode by OpenCV can tell."""
    i, exif, app1 = 2, None, False
    try:
        while True:
            if i >= len(data) or data[i] != 0xFF:
                return None
            while i < len(data) and data[i] == 0xFF:
                i += 1
            if i >= len(data):
                return None
            marker = data[i]
            i += 1
            if marker == 0x01 or 0xD0 <= marker <= 0xD8:
                continue
            if marker == 0xDA:  # start of scan: libjpeg has read every marker OpenCV looks at
                break
            if marker == 0xD9:
                return None
            length = _u16(data, i)
            if length < 2 or i + length > len(data):
                return None
            if marker == 0xE1:
                segment = data[i + 2 : i + length]
                if segment[:6] == b"Exif\0\0":
                    if exif is not None or app1:
                        return None  # OpenCV 4 reads the first APP1, OpenCV 5 every Exif one: they may disagree
                    exif = segment[6:]
                app1 = True
            i += length
    except HeaderError:
        return None
    return 1 if exif is None else _tiff_orientation(exif)
