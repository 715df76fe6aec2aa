"""Weights: the format, where directories live, and the ways to get one (fetch, import, random).

    format.py       the directory format, its manifest schema, atomic writing, checked reading
    locations.py    the default root and which directory is used when none is named
    torchvision.py  torchvision's checkpoints: fetch, import of a local .pth, layout conversion
    pth.py          a torch-free, allow-listed reader for PyTorch's zip checkpoints
    random_net.py   the deterministic random network the tests use
    calibration.py  activation ranges recorded by `pyresnet calibrate`, for the int8 stage
"""

from .calibration import CalibrationError, calibration_sources, read_calibration, weights_digest, write_calibration
from .format import (FORMAT, HOW_TO_GET, MANIFEST, check, preprocess_params, read_manifest, remove, sha256_file,
                     validate_manifest, write)
from .locations import ENV_ROOT, ENV_WEIGHTS, default_root, find, source_root
from .random_net import random, random_state
from .torchvision import (ENV_URL, MAX_DOWNLOAD_BYTES, VARIANTS, FetchError, Variant, fetch, from_torchvision,
                          import_pth, to_torchvision, torchvision_shapes)

__all__ = ["CalibrationError", "calibration_sources", "read_calibration", "weights_digest", "write_calibration",
           "FORMAT", "HOW_TO_GET", "MANIFEST", "check", "preprocess_params", "read_manifest", "remove", "sha256_file",
           "validate_manifest", "write", "ENV_ROOT", "ENV_WEIGHTS", "default_root", "find", "source_root", "random",
           "random_state", "ENV_URL", "MAX_DOWNLOAD_BYTES", "VARIANTS", "FetchError", "Variant", "fetch",
           "from_torchvision", "import_pth", "to_torchvision", "torchvision_shapes"]
