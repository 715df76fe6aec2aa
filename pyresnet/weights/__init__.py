"""Weights: the format, where directories live, and the ways to get one (fetch, import, random).

    schema.py       the manifest: its schema (the tensors' entries and the calibration entry), checked reading
    format.py       the directory: atomic writing, every tensor (and the calibration's files) checked on reading
    locations.py    the default root, the fetched variants' directories, which directory is used when none is named
    torchvision.py  torchvision's checkpoints: fetch, import of a local .pth, layout conversion
    pth.py          a torch-free, allow-listed reader for PyTorch's zip checkpoints
    random_net.py   the deterministic random network the tests use
    calibration.py  activation ranges recorded by `pyresnet calibrate`, for the int8 stage

The imports go one way (no module imports another inside a function to dodge a circle): calibration imports
schema; format imports calibration and schema; locations imports schema; torchvision and random_net import
format and locations.
"""

from .calibration import CalibrationError, calibration_sources, read_calibration, weights_digest, write_calibration
from .format import check, remove, sha256_file, write
from .locations import ENV_ROOT, ENV_WEIGHTS, default_root, find, source_root
from .random_net import natural_noise, random, random_state
from .schema import FORMAT, HOW_TO_GET, MANIFEST, preprocess_params, read_manifest, validate_manifest
from .torchvision import (ENV_URL, MAX_DOWNLOAD_BYTES, VARIANTS, FetchError, Variant, fetch, from_torchvision,
                          import_pth, to_torchvision, torchvision_shapes)

__all__ = ["CalibrationError", "calibration_sources", "read_calibration", "weights_digest", "write_calibration",
           "check", "remove", "sha256_file", "write", "ENV_ROOT", "ENV_WEIGHTS", "default_root", "find", "source_root",
           "natural_noise", "random", "random_state", "FORMAT", "HOW_TO_GET", "MANIFEST", "preprocess_params",
           "read_manifest", "validate_manifest", "ENV_URL", "MAX_DOWNLOAD_BYTES", "VARIANTS", "FetchError", "Variant",
           "fetch", "from_torchvision", "import_pth", "to_torchvision", "torchvision_shapes"]
