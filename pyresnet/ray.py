"""Classify a corpus of image files on a Ray cluster (Ray Data), with any stage of the lab, int8 included.

    import ray
    import pyresnet.ray as pr

    ray.init()                                   # a local cluster; ray.init(address="auto") joins a running one
    ds = pr.read_images(paths)                   # ray.data.read_binary_files with each path kept: read_images()
    out = pr.classify(ds, "v15", weights="/shared/weights/imagenet1k_v1", topk=5)
    for row in out.iter_rows():                  # {"path", "indices", "labels", "probs", "error"} (+ "logits")
        ...

What runs where. Ray Data's read tasks read the files (each row the file's bytes and its path) and stream them to a
pool of actors. Each actor is one Classifier (a callable class for map_batches): it loads one model when it starts
and then decodes, preprocesses and classifies its batches itself, so the object store carries a file's bytes in and
a few hundred bytes of results out, never the 600 kB float input of an image. An actor reserves `threads` CPUs from
Ray and its model runs that many threads; the pool holds, on every node, as many actors as that node's CPUs hold
(plan()). Reading reserves no CPU (num_cpus=0: it is I/O, and a read task waiting for a CPU the actors hold would
wait for ever).

Weights. With ship_weights=False each actor loads the weights directory from its path, which every node must see
(a shared file system). With ship_weights=True (the default on a cluster of more than one node) the driver puts the
directory's files into the object store once (ship()), and the first actor on each node writes them into a cache on
that node's disk ($PYRESNET_RAY_CACHE, else TMPDIR/pyresnet-ray-UID/weights-DIGEST), which the node's other actors
reuse: one copy of the directory (98 MB in fp32, with its calibration when it has one) per node over the network,
not per actor. Either way load() checks every tensor's sha256, as it always does.

Bad files. An image that cannot be read, or that the limits of `pyresnet run` refuse (pixel limit, aspect, formats,
truncated data), becomes a row with its error sentence and no classes; the job goes on. check_files() refuses on
the driver, before Ray reads anything, a path that is not a regular file or is larger than an image within the
pixel limit can be (Ray would read it whole).

Retries. Ray Data creates the actors with max_restarts=-1 and their calls with max_task_retries=-1: a worker that dies
(killed, out of memory, its node lost) is started again and its batch runs again; a batch's rows reach the output
only from the run that finished, so no image is lost or counted twice (tests/test_ray.py kills one mid-job, and
classify_files() counts every path).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from . import registry
from . import weights as wts
from .errors import UserError, WeightsError
from .images import exact_decode_default, pixel_limit
from .images.preprocess import max_file_bytes
from .model import check_options, check_threads, check_topk, load, whole_number
from .pipeline import NATIVE_BATCH
from .safeio import describe_size, publish_dir, read_regular, write_new

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pyarrow as pa
    import ray.data

INSTALL = "pip install 'pyresnet[ray]' (in a source checkout: pip install -e '.[ray]')"
ENV_CACHE = "PYRESNET_RAY_CACHE"  # where shipped weights are written on each node (default TMPDIR/pyresnet-ray-UID)
DEFAULT_THREADS = 1  # threads per model (and CPUs per actor) when not told: see README.md, "Many machines"
MAX_ACTORS = 100_000


def require_ray() -> Any:
    """The ray module with Ray Data, or a UserError saying in one sentence how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the part we use, an extra of its own
    except ImportError:
        raise UserError(f"Ray Data is not installed; {INSTALL}") from None
    return ray


FILES_PER_BLOCK = 16  # read_images(): files per block, so that a folder is many small tasks, spread and streamed
READS_PER_NODE = 2  # read_images(): read tasks at a time per node (each one more worker process to start)


def read_images(paths: Sequence[str | os.PathLike], **read_args: Any) -> "ray.data.Dataset":
    """ray.data.read_binary_files over `paths` (files or directories) with each row's path kept, made for the actors
    of classify():
    - reading reserves no CPU (num_cpus=0): the actors hold the CPUs, and a read task waiting for one would wait for
      ever on a small cluster;
    - at most READS_PER_NODE read tasks at a time per node (concurrency): a read task that reserves no CPU is
      otherwise started at once for every block, each in a worker process of its own to start, and the first result
      waits for all of them;
    - blocks of FILES_PER_BLOCK files when `paths` are files: Ray would make one block of every 100 MB or so, a
      thousand photos that one actor would classify while the others wait, with no result before the end.
    Any keyword given overrides these. Give it the paths check_files() kept, to have the driver refuse FIFOs and
    oversized files first."""
    ray = require_ray()
    names = [os.fspath(p) for p in paths]
    nodes = len(node_cpus()) if ray.is_initialized() else 1
    defaults: dict[str, Any] = {"num_cpus": 0, "concurrency": READS_PER_NODE * max(1, nodes)}
    if names and all(os.path.isfile(n) for n in names):
        defaults["override_num_blocks"] = -(-len(names) // FILES_PER_BLOCK)
    return ray.data.read_binary_files(names, include_paths=True, **{**defaults, **read_args})


def result_schema(logits: bool = False) -> "pa.Schema":
    """The columns of a result: path, indices / labels / probs of the top-k classes (highest first), logits
    (float32, 1000, when asked) and error (None, or why the image was not classified, its lists then null)."""
    import pyarrow as pa

    fields = [pa.field("path", pa.string()), pa.field("indices", pa.list_(pa.int32())),
              pa.field("labels", pa.list_(pa.string())), pa.field("probs", pa.list_(pa.float64()))]
    if logits:
        fields.append(pa.field("logits", pa.list_(pa.float32())))
    return pa.schema(fields + [pa.field("error", pa.string())])


def error_rows(failed: Sequence[tuple[str, str]], logits: bool = False) -> "pa.Table":
    """Result rows for images that were not classified: [(path, sentence)] -> a table in result_schema()."""
    import pyarrow as pa

    n = len(failed)
    cols: dict[str, list] = {"path": [p for p, _ in failed], "indices": [None] * n, "labels": [None] * n,
                             "probs": [None] * n}
    if logits:
        cols["logits"] = [None] * n
    cols["error"] = [e for _, e in failed]
    return pa.table(cols, schema=result_schema(logits))


def check_files(paths: Sequence[str | os.PathLike], max_pixels: int | None = None
                ) -> tuple[list[str], list[tuple[str, str]]]:
    """(paths Ray may read, [(path, sentence)] for the others), decided on the driver from each file's metadata
    before Ray reads a byte: a path that is not a regular file (a FIFO would block a read task, a device never end)
    or is larger than an image within the pixel limit can be (pyresnet.images: 8 bytes a pixel + 16 MiB) is refused
    with the sentence `pyresnet run` gives it. Paths are made absolute (a worker's directory is not the driver's)."""
    limit = max_file_bytes(pixel_limit(max_pixels))
    good: list[str] = []
    bad: list[tuple[str, str]] = []
    for p in paths:
        a = os.path.abspath(os.fspath(p))
        try:
            st = os.stat(a)
        except OSError as e:
            bad.append((a, f"cannot open image {a} ({e.strerror})"))
            continue
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
            bad.append((a, f"image {a} is {kind}; only regular files are read"))
        elif st.st_size > limit:
            bad.append((a, f"image {a} has {describe_size(st.st_size)}, more than the limit of "
                           f"{describe_size(limit)} (no image within the limit of "
                           f"{pixel_limit(max_pixels) / 1e6:g} megapixels is that large)"))
        elif not os.access(a, os.R_OK):
            bad.append((a, f"cannot open image {a} (Permission denied)"))
        else:
            good.append(a)
    return good, bad


# -- weights shipped through the object store ------------------------------------------------------------------

@dataclass(frozen=True)
class Shipped:
    """A weights directory in Ray's object store: its files concatenated into one uint8 array (ref), each file's
    name and [start, end) in it, and the sha256 of its manifest (which covers every other file), naming the copy
    on each node's disk."""

    ref: Any
    files: tuple[tuple[str, int, int], ...]
    digest: str
    nbytes: int
    put_s: float


def weights_files(d: Path, manifest: dict[str, Any]) -> list[str]:
    """The files of weights directory d that a stage reads: every tensor, the calibration's two files when the
    manifest has one, and the manifest."""
    names = [e["file"] for e in manifest["tensors"].values()]
    cal = manifest.get("calibration")
    if cal is not None:
        names.append(cal["file"])
        if "images_file" in cal:
            names.append(cal["images_file"])
    return names + [wts.MANIFEST]


def ship(d: Path, manifest: dict[str, Any]) -> Shipped:
    """Put weights directory d (checked by the caller) into the object store once, for materialize() on the nodes."""
    import hashlib

    ray = require_ray()
    start = time.perf_counter()
    parts, files, at = [], [], 0
    for name in weights_files(d, manifest):
        data = read_regular(d / name, 1 << 30, WeightsError, "weights file")
        parts.append(np.frombuffer(data, np.uint8))
        files.append((name, at, at + len(data)))
        at += len(data)
    blob = np.concatenate(parts)
    digest = hashlib.sha256(blob[files[-1][1]:files[-1][2]].tobytes()).hexdigest()  # the manifest: covers the rest
    ref = ray.put(blob)
    return Shipped(ref, tuple(files), digest, at, time.perf_counter() - start)


def cache_root() -> Path:
    """This node's directory for shipped weights: $PYRESNET_RAY_CACHE, else TMPDIR/pyresnet-ray-UID, created private
    (0700); refused when it is not a directory of this user that only this user may write."""
    base = Path(os.environ.get(ENV_CACHE) or Path(tempfile.gettempdir()) / f"pyresnet-ray-{os.getuid()}")
    try:
        base.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise WeightsError(f"{base} is not a directory that only this user may write; remove it, or set "
                           f"${ENV_CACHE} to one")
    return base


def materialize(shipped: Shipped) -> Path:
    """The shipped weights as a directory on this node's disk: the one already there (another actor on this node
    wrote it), else written from the object store (built beside it and renamed into place: safeio.publish_dir)."""
    import ray

    out = cache_root() / f"weights-{shipped.digest[:24]}"
    if (out / wts.MANIFEST).is_file():
        return out
    blob = ray.get(shipped.ref)
    try:
        with publish_dir(out, lambda o: f"{o} exists", WeightsError) as tmp:
            for name, a, b in shipped.files:
                write_new(tmp / name, memoryview(blob)[a:b])
    except WeightsError:
        if not (out / wts.MANIFEST).is_file():  # not another actor's copy appearing meanwhile: a real failure
            raise
    return out


# -- the actor ---------------------------------------------------------------------------------------------------

def assigned_cpus() -> int:
    """The CPUs Ray reserved for this actor (at least 1), or the CPUs this process may use outside Ray."""
    try:
        import ray

        n = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001 - not in a Ray worker
        n = None
    return max(1, int(n)) if n else check_threads(None)


class Classifier:
    """One model in one Ray actor, created once: __call__ takes a batch of files ({"bytes", "path"}, as
    read_binary_files(include_paths=True) gives them) and returns their results (result_schema()).

    Made by classify() through map_batches; its arguments are the driver's checked Job. The model runs `threads`
    threads (default: the CPUs Ray reserved for the actor); the images of a batch are decoded on as many threads,
    then classified in one call. An image that cannot be read is a row with its error, never an exception."""

    def __init__(self, version: str, weights: str | None = None, shipped: Shipped | None = None,
                 threads: int | None = None, topk: int = 5, logits: bool = False, max_pixels: int | None = None,
                 exact_decode: bool = False, options: dict[str, Any] | None = None):
        n = threads or assigned_cpus()
        opts = dict(options or {})
        if shipped is not None:
            d = materialize(shipped)
            try:
                self.model = load(version, weights=d, threads=n, **opts)
            except WeightsError:  # a damaged copy on this node's disk: written again once, then it must load
                wts.remove(d)
                self.model = load(version, weights=materialize(shipped), threads=n, **opts)
        else:
            self.model = load(version, weights=weights, threads=n, **opts)
        self.topk, self.logits = topk, logits
        self.max_pixels, self.exact_decode = max_pixels, exact_decode
        self.schema = result_schema(logits)
        self.decoders = ThreadPoolExecutor(n, thread_name_prefix="pyresnet-decode") if n > 1 else None

    def _prepare(self, data: bytes | None, path: str) -> np.ndarray | str:
        """The model's input for one file, or the sentence saying why there is none."""
        if data is None:
            return f"cannot read {path}: no data"
        try:
            return self.model.preprocess_bytes(data, path, max_pixels=self.max_pixels, exact_decode=self.exact_decode)
        except UserError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - a decoder's surprise on a hostile file must not end a days-long job
            return f"cannot read {path}: {type(e).__name__}: {e}"

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        paths = [str(p) for p in batch.column("path").to_pylist()]
        data = batch.column("bytes").to_pylist()
        if self.decoders is not None and len(paths) > 1:
            prepared = list(self.decoders.map(self._prepare, data, paths))
        else:
            prepared = [self._prepare(d, p) for d, p in zip(data, paths)]
        good = [i for i, x in enumerate(prepared) if isinstance(x, np.ndarray)]
        n = len(paths)
        cols: dict[str, list] = {"path": paths, "indices": [None] * n, "labels": [None] * n, "probs": [None] * n}
        if self.logits:
            cols["logits"] = [None] * n
        cols["error"] = [x if isinstance(x, str) else None for x in prepared]
        if good:
            xs = [prepared[i] for i in good]
            y = self.model.logits(np.stack(xs) if len(xs) > 1 else xs[0]).reshape(len(xs), -1)
            for i, row in zip(good, y):
                top = self.model.top(row, self.topk)
                cols["indices"][i] = [t[0] for t in top]
                cols["labels"][i] = [t[1] for t in top]
                cols["probs"][i] = [t[2] for t in top]
                if self.logits:
                    cols["logits"][i] = row.tolist()  # Python floats hold float32 values exactly
        return pa.table(cols, schema=self.schema)


# -- the job -----------------------------------------------------------------------------------------------------

@dataclass
class Job:
    """What classify() runs, checked on the driver before Ray does any work (prepare()); dataset() applies it to a
    dataset of files once Ray is up, and records in `placement` how it was placed."""

    version: str
    weights: Path
    manifest: dict[str, Any]
    options: dict[str, Any]
    topk: int = 5
    logits: bool = False
    threads: int | None = None
    actors: int | None = None
    batch: int = NATIVE_BATCH
    ship_weights: bool | None = None
    max_pixels: int = 0
    exact_decode: bool = False
    placement: dict[str, Any] = field(default_factory=dict)

    def dataset(self, ds: "ray.data.Dataset", udf: type | None = None) -> "ray.data.Dataset":
        """ds (rows {"bytes", "path"}) -> a dataset of results (result_schema()), lazily: nothing runs until it is
        consumed. Needs ray.init() first. udf: a subclass of Classifier to use instead (tests)."""
        ray = require_ray()
        if not ray.is_initialized():
            raise UserError("pyresnet.ray.classify needs a Ray cluster: call ray.init() first")
        threads, actors, nodes = plan(self.threads, self.actors)
        ship_it = nodes > 1 if self.ship_weights is None else self.ship_weights
        kwargs: dict[str, Any] = {"version": self.version, "threads": threads, "topk": self.topk,
                                  "logits": self.logits, "max_pixels": self.max_pixels,
                                  "exact_decode": self.exact_decode, "options": self.options}
        if ship_it:
            shipped = ship(self.weights, self.manifest)
            kwargs["shipped"] = shipped
            via = {"weights_via": "object store", "weights_bytes": shipped.nbytes, "put_s": shipped.put_s}
        else:
            kwargs["weights"] = str(self.weights)
            via = {"weights_via": "path", "weights_bytes": 0, "put_s": 0.0}
        self.placement = {"threads": threads, "actors": actors, "nodes": nodes, **via}
        # Retries: Ray Data creates the pool's actors with max_restarts=-1 and max_task_retries=-1 (restarted for
        # ever, a call that an actor's death interrupted retried for ever): what a job of days needs, so they are
        # left as they are (passing them is deprecated in Ray 2.60); tests/test_ray.py kills an actor to hold it.
        return ds.map_batches(udf or Classifier, fn_constructor_kwargs=kwargs, batch_size=self.batch,
                              batch_format="pyarrow", num_cpus=threads,
                              compute=ray.data.ActorPoolStrategy(size=actors))


def node_cpus() -> list[int]:
    """The CPUs of every live node of the connected cluster."""
    import ray

    return [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]


def plan(threads: int | None, actors: int | None) -> tuple[int, int, int]:
    """(threads per model, actors, nodes) for the connected cluster: each actor reserves `threads` CPUs (default
    DEFAULT_THREADS, no more than the largest node has), and the pool has floor(CPUs / threads) actors on every
    node, summed; `actors` may ask for fewer, never for more than fit (the pool would wait for them for ever)."""
    cpus = [c for c in node_cpus() if c > 0]
    if not cpus:
        raise UserError("the Ray cluster has no CPUs to run on")
    t = threads or min(DEFAULT_THREADS, max(cpus))
    if t > max(cpus):
        raise UserError(f"--threads {t} is more than the CPUs of any node of the Ray cluster (at most {max(cpus)})")
    fit = sum(c // t for c in cpus)
    if actors is not None and actors > fit:
        raise UserError(f"--actors {actors} do not fit: the Ray cluster's CPUs ({' + '.join(map(str, cpus))}) hold "
                        f"{fit} actor(s) of {t} thread(s)")
    return t, actors or fit, len(cpus)


def prepare(version: str | None = None, weights: str | os.PathLike | None = None, *, topk: int = 5,
            logits: bool = False, threads: int | None = None, actors: int | None = None, batch: int | None = None,
            ship_weights: bool | None = None, max_pixels: int | None = None, exact_decode: bool | None = None,
            **options: Any) -> Job:
    """Check everything a job needs on the driver, before Ray is started or asked for anything: the version, its
    options, the weights (every tensor's checksum; the int8 stage's calibration, made for them), topk, threads,
    actors, batch, the pixel limit and the decode mode ($PYRESNET_MAX_IMAGE_PIXELS, $PYRESNET_EXACT_DECODE and
    $PYRESNET_ISA are read here, on the driver, not on the workers), and the model is loaded once to prove it.
    A problem is a UserError sentence."""
    v = registry.get(version or registry.newest())
    opts = check_options(v, options)
    topk = check_topk(topk)
    if threads is not None:
        check_threads(threads)
    if actors is not None:
        whole_number(actors, "actors", 1, MAX_ACTORS)
    batch = NATIVE_BATCH if batch is None else whole_number(batch, "batch", 1, 1024)
    # The model itself, once, on one thread: what load() refuses (no weights, a tensor, a stale calibration, an
    # instruction set this CPU lacks) is refused here rather than by every actor; the weights' memory is freed after.
    m = load(v.key, weights=weights, threads=1, **opts)
    return Job(v.key, Path(os.path.abspath(m.weights_dir)), m.manifest, opts, topk, bool(logits), threads, actors,
               batch, ship_weights, pixel_limit(max_pixels), exact_decode_default(exact_decode))


def classify(ds: "ray.data.Dataset", version: str | None = None, weights: str | os.PathLike | None = None,
             **kwargs: Any) -> "ray.data.Dataset":
    """A dataset of image files (read_images(), or ray.data.read_binary_files(..., include_paths=True)) -> a dataset
    of results (result_schema()): one row per file, in the order batches finish.

    version: a stage (default: the newest fp32 one, as `run`); weights: a directory (default: as load());
    topk=5; logits=False (True adds the 1000 float32 logits); threads: per model, each actor reserving as many CPUs
    (default DEFAULT_THREADS); actors: default as many as the cluster's CPUs hold (plan()); batch: images per
    call (8); ship_weights: None ships through the object store on a cluster of several nodes and reads the path on
    one node; max_pixels, exact_decode: as pyresnet.preprocess; any other keyword: the stage's options (isa=,
    winograd=, max_batch=). Checked on the driver before anything runs (prepare())."""
    udf = kwargs.pop("udf", None)
    return prepare(version, weights, **kwargs).dataset(ds, udf)


# -- the driver's loop: what `pyresnet run --ray` runs -----------------------------------------------------------

@dataclass
class Summary:
    images: int = 0
    classified: int = 0
    failed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "classified": self.classified, "failed": self.failed,
                "seconds": round(self.seconds, 3),
                "img_s": round(self.classified / self.seconds, 2) if self.seconds else 0.0}


def results(paths: Sequence[str | os.PathLike], job: Job, udf: type | None = None) -> Iterator["pa.Table"]:
    """Every path through the job on the connected cluster, as tables of result rows, streamed as batches finish:
    first the files check_files() refused, then Ray's. Raises a UserError when the rows do not name every path
    exactly once (Ray's retries should make that impossible; this is where it would show)."""
    good, bad = check_files(paths, job.max_pixels)
    want = Counter(good) + Counter(p for p, _ in bad)
    got: Counter = Counter()
    if bad:
        t = error_rows(bad, job.logits)
        got.update(t.column("path").to_pylist())
        yield t
    if good:
        for t in job.dataset(read_images(good), udf).iter_batches(batch_size=None, batch_format="pyarrow"):
            got.update(t.column("path").to_pylist())
            yield t
    if got != want:
        lost, twice = want - got, got - want
        raise UserError(f"Ray returned {sum(got.values())} result rows for {sum(want.values())} images ("
                        f"{len(lost)} missing, {len(twice)} extra, e.g. {next(iter(lost or twice))})")


def writer(fmt: str, logits: bool) -> tuple[Callable[[Any], None], Callable[[Any, "pa.Table"], None],
                                              Callable[[Any], None]]:
    """(open, write, close) for an output of format "jsonl" (one JSON object a row) or "parquet", writing into a
    binary file object (the one safeio.write_file gives)."""
    import json

    state: dict[str, Any] = {}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        def open_(f: Any) -> None:
            state["w"] = pq.ParquetWriter(f, result_schema(logits))

        def write(f: Any, t: "pa.Table") -> None:
            state["w"].write_table(t)

        def close(f: Any) -> None:
            state["w"].close()

        return open_, write, close

    def write_jsonl(f: Any, t: "pa.Table") -> None:
        f.write("".join(json.dumps(row) + "\n" for row in t.to_pylist()).encode())

    return (lambda f: None), write_jsonl, (lambda f: None)


def output_format(path: str | os.PathLike) -> str:
    """'parquet' for a name ending in .parquet or .pq, else 'jsonl' (JSON lines)."""
    return "parquet" if os.fspath(path).lower().endswith((".parquet", ".pq")) else "jsonl"


def _tables(stream: Iterator["pa.Table"], summary: Summary) -> Iterator["pa.Table"]:
    for t in stream:
        ok = t.column("error").null_count  # the rows without an error
        summary.classified += ok
        summary.failed += len(t) - ok
        summary.images += len(t)
        yield t


def classify_files(paths: Sequence[str | os.PathLike], job: Job, write: Callable[[Any, "pa.Table"], None],
                   f: Any, udf: type | None = None) -> Summary:
    """Run the job over paths, write(f, table) for every table of results as it comes; return the counts."""
    summary = Summary()
    start = time.perf_counter()
    for t in _tables(results(paths, job, udf), summary):
        write(f, t)
    summary.seconds = time.perf_counter() - start
    return summary


def connect(address: str | None, **init_args: Any) -> bool:
    """ray.init() on `address` (None: $RAY_ADDRESS, else a new local cluster on this machine); True when this call
    started it (the caller then shuts it down). A cluster that cannot be reached is one UserError sentence."""
    import logging

    ray = require_ray()
    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        ray.init(address=addr, include_dashboard=False, logging_level=logging.WARNING,
                 **{"log_to_driver": True, **init_args})
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot reach the Ray cluster at {addr}: {first}") from None
    return True


_RAISED = re.compile(r"^(pyresnet(?:\.\w+)*)\.(\w+): (.+)$", re.M)


def user_error_of(e: BaseException) -> UserError | None:
    """The UserError a Ray failure carries (an actor that could not load its weights on a node, a stage option that
    node's CPU lacks), found along its causes, or in the traceback text of an actor that died in its constructor
    (Ray keeps only that); None when it is something else (a bug)."""
    import importlib

    seen = 0
    while e is not None and seen < 16:
        if isinstance(e, UserError):
            return e
        for module, name, message in _RAISED.findall(str(e))[::-1]:  # the last one raised is the one that ended it
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
            if isinstance(cls, type) and issubclass(cls, UserError):
                return cls(message)
        cause = getattr(e, "cause", None)
        e = cause if isinstance(cause, BaseException) else (e.__cause__ or e.__context__)
        seen += 1
    return None
