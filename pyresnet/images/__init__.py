"""Images in: reading files that may lie about themselves, and torchvision's ImageNet eval transform.

    imagesize.py    the size an image file declares, read from its header before anything is decoded
    preprocess.py   decoding with checks (a large JPEG at a reduced scale), resize / centre crop / normalise,
                    listing a folder's images
"""

from .imagesize import FORMATS, HeaderError, read_size
from .preprocess import (ENV_EXACT_DECODE, ENV_MAX_PIXELS, IMAGE_SUFFIXES, MAX_ASPECT, MAX_PIXELS, MEAN, STD,
                         ImageLike, check_sizes, exact_decode_default, list_images, pixel_limit, preprocess,
                         preprocess_bytes, read_rgb)

__all__ = ["FORMATS", "HeaderError", "read_size", "ENV_EXACT_DECODE", "ENV_MAX_PIXELS", "IMAGE_SUFFIXES",
           "MAX_ASPECT", "MAX_PIXELS", "MEAN", "STD", "ImageLike", "check_sizes", "exact_decode_default", "list_images",
           "pixel_limit", "preprocess", "preprocess_bytes", "read_rgb"]
