"""Read a PyTorch `.pth` state_dict into numpy without importing torch, treating the file as hostile.

torch.save (since PyTorch 1.6) writes a zip archive: `<name>/data.pkl` pickles the dict, and each tensor's storage
is the raw little-endian bytes of `<name>/data/<key>`. We unpickle with an allow-list of the few globals a
state_dict needs, so a .pth can never run code here (torch.load without weights_only can).

Nothing is trusted before it is checked, and no data is read before everything about it is checked:
- the file: a regular file of at most max_import_bytes() (a ResNet-50 state_dict is about 98 MiB);
- the archive: data.pkl at most 16 MiB, every entry's uncompressed size within the cap, their sum too;
- unpickling builds descriptions only (_Storage, _Tensor): no storage is read while the pickle runs;
- each tensor the caller asks for, by name: it is a tensor built from a storage; the storage's dtype is one we
  know; size and stride are tuples of non-negative whole numbers of the same length; offset is non-negative; the
  furthest element it touches lies inside its storage; the storage's declared byte length equals its zip entry's
  size; and its shape is the one the caller expects. Only then is its entry read.
Every failure is one WeightsError sentence naming the file and, where there is one, the tensor.
Files in the legacy pre-1.6 format are handed to torch.load(weights_only=True) when torch is installed.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import WeightsError
from ..safeio import MiB, describe_size, open_regular

ENV_MAX_IMPORT = "PYRESNET_MAX_IMPORT_MB"
MAX_IMPORT_BYTES = 512 * MiB  # about five ResNet-50 state_dicts (98 MiB each)
MAX_PICKLE_BYTES = 16 * MiB  # a ResNet-50 data.pkl is about 30 kB

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # known to torch, not to numpy: refused by name below
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
FLOAT_DTYPES = (np.float32, np.float64, np.float16)


def max_import_bytes() -> int:
    """The largest .pth accepted, and the most its archive may unpack to: $PYRESNET_MAX_IMPORT_MB, else 512 MiB."""
    text = os.environ.get(ENV_MAX_IMPORT, "").strip()
    if not text:
        return MAX_IMPORT_BYTES
    try:
        mb = int(text)
    except ValueError:
        mb = 0
    if not 1 <= mb <= 1 << 20:
        raise WeightsError(f"${ENV_MAX_IMPORT} must be a whole number of MiB from 1 to 1048576, got '{text}'")
    return mb * MiB


class _StorageType:
    def __init__(self, name: str):
        self.name = name


@dataclass(frozen=True)
class _Storage:
    """A storage the pickle refers to: not read until a tensor on it has been checked."""

    type_name: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    """A tensor as the pickle describes it (torch._utils._rebuild_tensor_v2's arguments), unchecked."""

    storage: Any
    offset: Any
    size: Any
    stride: Any


def _rebuild_tensor(storage: Any = None, offset: Any = None, size: Any = None, stride: Any = None, *_: Any,
                    **__: Any) -> _Tensor:
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any = None, *_: Any, **__: Any) -> Any:
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsError(f"{self._path} holds an object this reader does not accept ({module}.{name}); "
                           "a state_dict needs only tensors")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel): recorded here, checked when a tensor uses it
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int) and not isinstance(pid[4], bool)):
            raise WeightsError(f"{self._path} is not a readable PyTorch checkpoint (a storage reference is malformed)")
        return _Storage(pid[1].name, pid[2], pid[4])


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class _Archive:
    """An open torch zip archive whose entries have been sized; reads a tensor only after checking it."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str, path: Path):
        self.zf, self.prefix, self.path = zf, prefix, path
        self.sizes = {i.filename: i.file_size for i in zf.infolist()}
        self.storages: dict[str, np.ndarray] = {}  # read once each, even when tensors share one

    def check(self, name: str, t: Any, shape: tuple[int, ...] | None) -> None:
        """Every property of tensor `name` that can be checked without reading its data."""
        where = f"{self.path}: tensor '{name}'"
        if not isinstance(t, _Tensor):
            raise WeightsError(f"{where} is a {type(t).__name__}, not a tensor")
        s = t.storage
        if not isinstance(s, _Storage):
            raise WeightsError(f"{where} is built on a {type(s).__name__} where a storage belongs")
        dtype = _STORAGE_DTYPES.get(s.type_name)
        if dtype is None:
            raise WeightsError(f"{where} has storage type {s.type_name}, which this reader cannot convert")
        if shape is not None and np.dtype(dtype) not in [np.dtype(f) for f in FLOAT_DTYPES]:
            raise WeightsError(f"{where} holds {np.dtype(dtype).name} values, not floating point weights")
        if not (_whole(t.offset) and isinstance(t.size, tuple) and isinstance(t.stride, tuple)
                and len(t.size) == len(t.stride) and all(map(_whole, t.size)) and all(map(_whole, t.stride))):
            raise WeightsError(f"{where} has a malformed layout (offset {t.offset!r}, size {t.size!r}, stride "
                               f"{t.stride!r}): sizes, strides and offset must be non-negative whole numbers")
        if shape is not None and t.size != shape:
            raise WeightsError(f"{where} has shape {t.size}, ResNet-50 needs {shape}")
        entry = f"{self.prefix}data/{s.key}"
        if entry not in self.sizes:
            raise WeightsError(f"{where}: its storage '{s.key}' is missing from the archive")
        nbytes = s.numel * np.dtype(dtype).itemsize
        if self.sizes[entry] != nbytes:
            raise WeightsError(f"{where}: its storage declares {s.numel} values ({nbytes} bytes) but the archive "
                               f"entry holds {self.sizes[entry]} bytes")
        if 0 not in t.size:
            furthest = t.offset + sum((n - 1) * st for n, st in zip(t.size, t.stride))
            if furthest >= s.numel:
                raise WeightsError(f"{where} reaches element {furthest} of a storage of {s.numel} values")

    def read(self, t: _Tensor) -> np.ndarray:
        """The tensor's values, contiguous (check() must have passed)."""
        s = t.storage
        if s.key not in self.storages:
            raw = self.zf.read(f"{self.prefix}data/{s.key}")
            self.storages[s.key] = np.frombuffer(raw, dtype=_STORAGE_DTYPES[s.type_name])
        data = self.storages[s.key]
        if data.dtype != _STORAGE_DTYPES[s.type_name]:
            raise WeightsError(f"{self.path}: storage '{s.key}' is used with two different types")
        if 0 in t.size:
            return np.zeros(t.size, data.dtype)
        view = np.lib.stride_tricks.as_strided(data[t.offset :], shape=t.size,
                                               strides=[st * data.itemsize for st in t.stride], writeable=False)
        return np.ascontiguousarray(view)


def _file_size(path: Path) -> int:
    """The file's size, refusing what is not a regular file or is larger than the cap (nothing read yet)."""
    fd, size = open_regular(path, WeightsError, "checkpoint")
    os.close(fd)
    cap = max_import_bytes()
    if size > cap:
        raise WeightsError(f"{path} has {describe_size(size)}, more than the import limit of {describe_size(cap)} "
                           f"(a ResNet-50 checkpoint is about 98 MiB; ${ENV_MAX_IMPORT} raises the limit)")
    return size


def _unwrap(obj: Any, path: Path) -> Mapping[Any, Any]:
    # Accept a bare state_dict and the usual wrappers around one.
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} does not hold a state_dict (it holds a {type(obj).__name__})")
    return {(k[7:] if isinstance(k, str) and k.startswith("module.") else k): v for k, v in obj.items()}


def read_state_dict(path: Path, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The tensors `expected` names, with those shapes (torch's layout), from a torch-saved dict.

    Tensors the file holds beyond these (num_batches_tracked, say) are never read.
    """
    path = Path(path)
    _file_size(path)
    if not zipfile.is_zipfile(path):
        return _read_legacy(path, expected)
    cap = max_import_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > cap:
                raise WeightsError(f"{path} unpacks to {describe_size(total)}, more than the import limit of "
                                   f"{describe_size(cap)} (${ENV_MAX_IMPORT} raises the limit)")
            pkl = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if not pkl:
                raise WeightsError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)")
            if pkl[0].file_size > MAX_PICKLE_BYTES:
                raise WeightsError(f"{path}: its data.pkl unpacks to {describe_size(pkl[0].file_size)}, more than "
                                   f"a state_dict's index can need ({describe_size(MAX_PICKLE_BYTES)})")
            prefix = pkl[0].filename[: -len("data.pkl")]
            with zf.open(pkl[0]) as f:
                obj = _Unpickler(f, path).load()
            sd = _unwrap(obj, path)
            archive = _Archive(zf, prefix, path)
            for name, shape in expected.items():
                if name not in sd:
                    raise WeightsError(f"{path} has no tensor '{name}': not a torchvision ResNet-50 state_dict")
                archive.check(name, sd[name], shape)
            return {name: archive.read(sd[name]) for name in expected}  # each storage read once, all within the cap
    except WeightsError:
        raise
    except RecursionError:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint (its pickle nests too deeply)") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, ValueError,
            TypeError, AttributeError, IndexError, OverflowError, UnicodeDecodeError, MemoryError, OSError) as e:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def _read_legacy(path: Path, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
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
    sd = _unwrap(obj, path)
    out = {}
    for name, shape in expected.items():
        t = sd.get(name)
        if t is None:
            raise WeightsError(f"{path} has no tensor '{name}': not a torchvision ResNet-50 state_dict")
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise WeightsError(f"{path}: tensor '{name}' is not a floating point tensor")
        if tuple(t.shape) != shape:
            raise WeightsError(f"{path}: tensor '{name}' has shape {tuple(t.shape)}, ResNet-50 needs {shape}")
        out[name] = t.detach().to(torch.float32).contiguous().numpy()
    return out
