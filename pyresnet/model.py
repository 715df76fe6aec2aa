"""pyresnet.load(): one version of the lab, its weights checked, behind one small API."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from . import arch, registry
from . import weights as wts
from .errors import InputError, UserError, WeightsError
from .images import ImageLike, preprocess, preprocess_bytes
from .labels import labels
from .machine import cpus_allowed

MAX_THREADS = 1024
MAX_BATCH = 1024
INPUT_SHAPE = (arch.INPUT, arch.INPUT, 3)


def whole_number(value: Any, name: str, lo: int, hi: int) -> int:
    """value as an int if it is a whole number (Python or numpy, not a bool) from lo to hi; else one sentence."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise UserError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def check_threads(threads: Any) -> int:
    """None -> the CPUs this process may use (its affinity mask, not the machine's total); otherwise a whole
    number from 1 to MAX_THREADS."""
    return cpus_allowed() if threads is None else whole_number(threads, "threads", 1, MAX_THREADS)


def check_topk(topk: Any) -> int:
    return whole_number(topk, "topk", 1, 1000)


T = TypeVar("T")


class CallThread:
    """A daemon thread that runs one model's long native calls while the main thread waits for them.

    Python runs a signal handler only on its main thread, between bytecodes: a main thread inside a C++ call for
    seconds cannot see Ctrl-C. So the main thread hands a long call to this thread and waits on an Event, where
    Ctrl-C raises KeyboardInterrupt; it then sets the call's token, the C++ forward pass stops at its next layer
    boundary (csrc/common/interrupt.h), the main thread waits for that (a layer, at most about a second) and the
    KeyboardInterrupt goes on. The thread is started once per model and process (a forked child starts its own), so a
    call creates no thread and allocates nothing outside the GIL (tests/test_no_malloc.py counts).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pid: int | None = None

    @staticmethod
    def _serve(jobs: queue.SimpleQueue) -> None:
        while True:
            call, done, box = jobs.get()
            try:
                box["out"] = call()
            except BaseException as e:  # noqa: BLE001 - re-raised on the waiting thread
                box["error"] = e
            finally:
                done.set()

    def run(self, call: Callable[[Any], T], make_token: Callable[[], Any]) -> T:
        """call(token) on this thread; Ctrl-C on the waiting (main) thread sets the token and waits for the call to
        stop before the KeyboardInterrupt goes on."""
        if self._pid != os.getpid():  # first use, or a forked child, which has none of its parent's threads
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(self._jobs,), name="pyresnet-call", daemon=True).start()
            self._pid = os.getpid()
        token = make_token()
        done = threading.Event()
        box: dict[str, Any] = {}
        self._jobs.put((lambda: call(token), done, box))
        try:
            done.wait()
        except KeyboardInterrupt:
            token.set()
            while not done.is_set():  # the call ends at its next layer; a second Ctrl-C does not leave it running
                try:
                    done.wait()
                except KeyboardInterrupt:
                    pass
            raise
        if "error" in box:
            raise box["error"]
        return box["out"]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - logits.max())
    return e / e.sum()


class Model:
    """A loaded version: logits() on a preprocessed image, classify() on an image file."""

    # A native call on more images than this, or any call of a stage marked slow, runs interruptibly (one image of a
    # fast stage takes well under a second, so Ctrl-C is answered between calls without a worker thread).
    INTERRUPTIBLE_IMAGES = 1

    def __init__(self, version: registry.Version, native: Any, weights_dir: Path, manifest: dict, threads: int):
        self.version = version
        self.native = native  # the version's own model object (C++ or numpy)
        self._caller = CallThread()
        self.weights_dir = weights_dir
        self.manifest = manifest
        self.requested_threads = threads

    @property
    def threads(self) -> int:
        """Threads the version really uses (1 for the single-threaded stages)."""
        return int(self.native.threads)

    @property
    def random_weights(self) -> bool:
        return self.manifest.get("source") == "random"

    def logits(self, x: np.ndarray) -> np.ndarray:
        """One image float32 (224, 224, 3), as preprocess() returns -> float32 (1000,) logits; or a batch
        (N, 224, 224, 3) -> (N, 1000). Stages with the "batch" feature take the batch in one native call; the
        others run its images one by one, which gives bitwise the one-image results."""
        if not isinstance(x, np.ndarray):
            raise InputError(f"logits takes a numpy array, got {type(x).__name__}")
        if x.ndim == 3:
            return self._native_logits(x, 1)
        if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
            raise InputError(f"logits takes one image {INPUT_SHAPE} or a batch (N, {', '.join(map(str, INPUT_SHAPE))})"
                             f", got shape {x.shape}")
        if x.shape[0] == 0:
            raise InputError("logits got an empty batch (N = 0)")
        if x.dtype != np.float32:
            raise InputError(f"logits takes float32 input, got {x.dtype}")
        if self.version.has("batch"):
            return self._native_logits(x, x.shape[0])
        out = np.empty((x.shape[0], arch.CLASSES), np.float32)
        for i in range(x.shape[0]):  # one call per image: Ctrl-C is answered between them
            out[i] = self._native_logits(x[i], 1)
        return out

    def profile(self, x: np.ndarray) -> list:
        """One profiled forward pass: [(layer, op, (h, w, c), flops, ms), ...] (pyresnet.instruments.profile);
        interruptible like a long logits() call."""
        if self.version.directory is None:
            return self.native.profile(x)
        return self._interruptible(lambda token: self.native.profile(x, interrupt=token))

    def _native_logits(self, x: np.ndarray, images: int) -> np.ndarray:
        """The native logits() call, interruptible by Ctrl-C when it is long (see CallThread)."""
        if self.version.directory is None or not (self.version.slow or images > self.INTERRUPTIBLE_IMAGES):
            return self.native.logits(x)
        return self._interruptible(lambda token: self.native.logits(x, interrupt=token))

    def _interruptible(self, call: Callable[[Any], T]) -> T:
        """call(token) so that Ctrl-C stops it within a layer: on the main thread, through this model's CallThread;
        on any other thread (which cannot receive Ctrl-C) here, without a token."""
        if threading.current_thread() is not threading.main_thread():
            return call(None)
        return self._caller.run(call, registry.module(self.version.key).Interrupt)

    def preprocess(self, image: ImageLike, max_pixels: int | None = None,
                   exact_decode: bool | None = None) -> np.ndarray:
        """An image file or uint8 RGB array -> this model's input, with its weights' resize and crop (a large JPEG
        decoded at a reduced scale unless exact_decode: see pyresnet.preprocess)."""
        resize, crop = wts.preprocess_params(self.manifest)
        return preprocess(image, resize=resize, crop=crop, max_pixels=max_pixels, exact_decode=exact_decode)

    def preprocess_bytes(self, data: bytes, name: str | os.PathLike, max_pixels: int | None = None,
                         exact_decode: bool | None = None) -> np.ndarray:
        """preprocess() of an image file's content read elsewhere (Ray's read_binary_files): the same checks and
        bits as preprocess(name) on that file; `name` is what error sentences call it."""
        resize, crop = wts.preprocess_params(self.manifest)
        return preprocess_bytes(data, name, resize=resize, crop=crop, max_pixels=max_pixels,
                                exact_decode=exact_decode)

    def classify(self, image: ImageLike | Sequence[ImageLike], topk: int = 5) -> Any:
        """[(class index, label, probability), ...] for the topk classes, highest first; for a list of images, one
        such list per image (the images run as one batch)."""
        check_topk(topk)
        if isinstance(image, (list, tuple)):
            if not image:
                raise InputError("classify got an empty list of images")
            batch = np.stack([self.preprocess(i) for i in image])
            return [self.top(y, topk) for y in self.logits(batch)]
        return self.top(self.logits(self.preprocess(image)), topk)

    @staticmethod
    def top(logits: np.ndarray, topk: int) -> list[tuple[int, str, float]]:
        topk = check_topk(topk)
        p = softmax(logits)
        idx = np.argsort(-logits, kind="stable")[:topk]
        names = labels()
        return [(int(i), names[i], float(p[i])) for i in idx]

    def __repr__(self) -> str:
        return f"<pyresnet.Model {self.version.key} threads={self.threads} weights={self.weights_dir}>"


def load(version: str, weights: str | os.PathLike | None = None, threads: int | None = None,
         **options: Any) -> Model:
    """Load a version ('py', 'v1', ... or a directory name like 'v1_origin') with checked weights.

    weights: a weights directory; default $PYRESNET_WEIGHTS, else the best one found under the default location
    (see pyresnet.weights.find). threads: default all CPUs this process may use; single-threaded versions
    ignore it. Every tensor is validated (shape, size, sha256) before the model is built.
    options: the native options of the stages that have them (registry.OPTIONS), checked here:
      isa='auto' | 'avx2' | 'avx512'  (stages with the "isa" feature; default $PYRESNET_ISA, else the CPU's best;
                                       the bf16 stage adds 'avx512_bf16', the int8 stage 'avx512_vnni')
      winograd=True | False           (stages with the "winograd" feature: default True; with "int8_winograd":
                                       default, or None, the layers its path runs faster so, none with VNNI)
      max_batch=N                     (stages with the "batch" feature: images per native call, buffers sized at
                                       load; a larger batch is split)
      weight_bits=7 | 8               (stages with the "weight_bits" feature: the int8 weights' range; default 8 on
                                       the avx512_vnni path, 7 on the others, whose vpmaddubsw sums 7-bit ones only)
    """
    v = registry.get(version)
    n = check_threads(threads)
    native_options = check_options(v, options)
    mod = registry.module(v.key)
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be a path (str or os.PathLike), got {type(weights).__name__}")
    d = wts.find(weights)
    if d is None:
        raise WeightsError(f"no weights found under {wts.default_root()}; {wts.HOW_TO_GET}")
    state, manifest = wts.check(d, keep=v.directory is None)
    if v.has("int8"):
        wts.read_calibration(d, manifest)  # present, intact and made for these weights, or one sentence saying how
    if v.directory is None:
        native = mod.Model(state)
    else:
        try:
            # bytes, not str: a directory name need not be valid UTF-8, and C++ takes the bytes as they are
            native = mod.Model(os.fsencode(Path(d).resolve()), n, **native_options)
        except mod.WeightsError as e:
            raise WeightsError(str(e)) from None
        except UnicodeDecodeError as e:  # pybind11 could not decode the C++ message: it names a non-UTF-8 path
            raise WeightsError(bytes(e.object).decode("utf-8", "backslashreplace")) from None
        except ValueError as e:  # an option the native model refuses (e.g. an instruction set this CPU lacks)
            raise UserError(str(e)) from None
    return Model(v, native, Path(d), manifest, n)


ENV_ISA = "PYRESNET_ISA"
# The instruction-set names. fp32 stages know the first three; the reduced-precision stages add the paths of their
# dot-product instructions (a stage refuses a name it has no path for, in one sentence).
ISAS = ("auto", "avx2", "avx512", "avx512_bf16", "avx512_vnni")


def check_options(v: registry.Version, options: dict[str, Any]) -> dict[str, Any]:
    """The native options for version v, each checked: one the stage lacks, or a bad value, is a UserError."""
    for name in options:
        if name not in registry.OPTIONS:
            raise TypeError(f"load() got an unexpected option '{name}'; the options are: "
                            f"{', '.join(registry.OPTIONS)}")
        if name not in v.options:
            since = [u.key for u in registry.REGISTRY if u.directory and name in u.options]
            raise UserError(f"version {v.key} has no option '{name}'"
                            + (f" (stages {since[0]} on have it)" if since else ""))
    out = dict(options)
    if "isa" in v.options:
        isa = out.get("isa")
        if isa is None:
            isa = os.environ.get(ENV_ISA, "")
            if isa and isa not in ISAS:
                raise UserError(f"${ENV_ISA} must be one of {', '.join(ISAS)} (or unset), got '{isa}'")
            out["isa"] = isa or "auto"
        elif isa not in ISAS:
            raise UserError(f"isa must be one of {', '.join(ISAS)}, got {isa!r}")
    if "winograd" in out and out["winograd"] is None:
        del out["winograd"]  # the stage's default
    elif "winograd" in out and not isinstance(out["winograd"], bool):
        raise UserError(f"winograd must be True or False, got {out['winograd']!r}")
    if "max_batch" in out:
        out["max_batch"] = whole_number(out["max_batch"], "max_batch", 1, MAX_BATCH)
    if "weight_bits" in out:
        bits = out["weight_bits"]
        if bits is None:
            del out["weight_bits"]  # the path's default
        elif isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or bits not in (7, 8):
            raise UserError(f"weight_bits must be 7 or 8, got {bits!r}")
        else:
            out["weight_bits"] = int(bits)
    return out
