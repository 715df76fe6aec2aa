"""Read a PyTorch `.pth` state_dict into numpy without importing torch.

torch.save (since PyTorch 1.6) writes a zip archive: `<name>/data.pkl` pickles the dict, and each tensor's storage
is the raw little-endian bytes of `<name>/data/<key>`. We unpickle with an allow-list of the few globals a
state_dict needs, so a .pth can never run code here (torch.load without weights_only can). Files in the legacy
pre-1.6 format are handed to torch.load(weights_only=True) when torch is installed.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    isz = storage.itemsize
    need = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if need > storage.size:
        raise WeightsError("corrupt .pth file: a tensor reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[s * isz for s in stride])
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, zf: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._zf, self._prefix = zf, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsError(f"the .pth file holds an object this reader does not accept ({module}.{name})")

    def persistent_load(self, pid: Any) -> np.ndarray:
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError("corrupt .pth file: unexpected persistent id")
        stype, key = pid[1], pid[2]
        data = self._zf.read(f"{self._prefix}/data/{key}")
        return np.frombuffer(data, dtype=stype.dtype)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a torch-saved dict, as numpy arrays (float32 as float32)."""
    if not zipfile.is_zipfile(path):
        return _read_legacy(path)
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pkl:
                raise WeightsError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)")
            prefix = pkl[0].rsplit("/", 1)[0] if "/" in pkl[0] else ""
            with zf.open(pkl[0]) as f:
                obj = _Unpickler(f, zf, prefix).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError, ValueError, TypeError) as e:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({e})") from None
    return _tensors(obj, path)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise WeightsError(
            f"{path} is not a zip-format PyTorch checkpoint; if it is a pre-1.6 one, install torch "
            "(pip install 'pyresnet[torch]') so that it can be read"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__})") from None
    if isinstance(obj, dict):
        obj = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in obj.items()}
    return _tensors(obj, path)


def _tensors(obj: Any, path: Path) -> dict[str, np.ndarray]:
    # Accept a bare state_dict and the usual wrappers around one.
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} does not hold a state_dict")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            out[k[7:] if k.startswith("module.") else k] = v
    return out
