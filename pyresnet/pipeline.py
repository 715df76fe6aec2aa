"""Many images through one model: reader threads decode ahead of inference, images go in batches, memory bounded.

    with closing(classify(model, paths, batch=8, readers=1)) as stream:
        for c in stream:
            ... c.good: the readable items, c.logits: their (len(good), 1000) logits, c.failed: [(path, message)] ...

classify() is the streaming loop `run`, `eval` and bench's end-to-end row share: read_ahead() keeps at most a
window of images decoded ahead of the consumer (0.6 MB each), whatever the number of paths, and yields them in the
order of the paths; batches() groups them; a file that cannot be read is an item with its error sentence, not an
exception, so one bad upload does not stop a folder. Decoding (OpenCV) and inference (C++) both release the GIL, so
a reader thread overlaps the inference of the previous batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from .errors import UserError

if TYPE_CHECKING:
    from .model import Model

def default_readers() -> int:
    """How many reader threads `run` starts when not told (--readers): half the CPUs this process may use, at
    least one. The end-to-end measurement of `bench` uses the same default."""
    from .machine import cpus_allowed

    return max(1, cpus_allowed() // 2)


NATIVE_BATCH = 8  # `run`'s batch for a stage that computes a batch in one call (the registry's "batch" feature)


def default_batch(model: "Model") -> int:
    """The batch `run` uses when not told (--batch): NATIVE_BATCH images per call for a stage with a native batch,
    whose layers then run longer between two joins of its threads (fewer stalls while a reader thread holds a
    core), else 1 (a stage without one would only loop over the images). The end-to-end rows of `bench` use it."""
    return NATIVE_BATCH if model.version.has("batch") else 1


STOP_WAIT_S = 10.0  # at most this long for the decodes running when a reader is closed (a decode takes < 1 s)


@dataclass
class Item:
    path: Path
    x: np.ndarray | None = None  # the preprocessed input, or None when the file could not be read
    error: str | None = None


@dataclass
class Batch:
    good: list[Item] = field(default_factory=list)  # in path order
    failed: list[Item] = field(default_factory=list)  # met while filling this batch

    def stack(self) -> np.ndarray:
        return np.stack([i.x for i in self.good])


class _Job:
    """One path to prepare; done is set when item (or error) is there."""

    __slots__ = ("path", "item", "error", "done")

    def __init__(self, path: Path):
        self.path = path
        self.item: Item | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class _Readers:
    """A small pool of daemon threads taking jobs from a queue. Daemon: the interpreter does not wait for them at
    exit. cancel() drops every queued job at once; the threads finish the decode they are in, then end."""

    def __init__(self, prepare: Callable[[Path], np.ndarray], readers: int):
        self.prepare = prepare
        self.queue: deque[_Job] = deque()
        self.ready = threading.Condition()
        self.closed = False
        self.threads = [threading.Thread(target=self._work, name=f"pyresnet-reader-{i}", daemon=True)
                        for i in range(readers)]
        for t in self.threads:
            t.start()

    def submit(self, job: _Job) -> None:
        with self.ready:
            self.queue.append(job)
            self.ready.notify()

    def _work(self) -> None:
        while True:
            with self.ready:
                while not self.queue and not self.closed:
                    self.ready.wait()
                if self.closed:
                    return
                job = self.queue.popleft()
            try:
                job.item = Item(job.path, self.prepare(job.path))
            except UserError as e:  # an unreadable image: reported by the consumer, the others go on
                job.item = Item(job.path, error=str(e))
            except BaseException as e:  # noqa: BLE001 - a bug: raised again on the consumer's thread
                job.error = e
            job.done.set()

    def cancel(self) -> None:
        """Drop the queued jobs, let the threads end after the decode each is in, wait for those decodes (bounded)."""
        with self.ready:
            self.closed = True
            self.queue.clear()
            self.ready.notify_all()
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(STOP_WAIT_S)


def read_ahead(paths: Iterable[Path], prepare: Callable[[Path], np.ndarray], readers: int = 1,
               window: int = 16) -> Iterator[Item]:
    """prepare(path) for every path on `readers` threads, at most `window` ahead; items in path order.

    Closing the generator (its end, an exception or Ctrl-C in the consumer, or close()) cancels every queued read at
    once: only the decodes already running are waited for, never the rest of the window, and the reader threads
    are daemons, which the interpreter does not join at exit. Use it under contextlib.closing() so that happens
    when the consumer's block ends, not when the generator is collected."""
    if readers < 1 or window < 1:
        raise ValueError("read_ahead needs readers >= 1 and window >= 1")
    todo = iter(paths)
    pool = _Readers(prepare, readers)
    pending: deque[_Job] = deque()

    def submit_next() -> None:
        p = next(todo, None)
        if p is not None:
            job = _Job(p)
            pending.append(job)
            pool.submit(job)

    try:
        for _ in range(window):
            submit_next()
        while pending:
            job = pending.popleft()
            job.done.wait()  # Ctrl-C interrupts the wait: KeyboardInterrupt is raised here, then the finally
            if job.error is not None:
                raise job.error
            submit_next()
            assert job.item is not None
            yield job.item
    finally:
        pool.cancel()


def batches(items: Iterable[Item], size: int) -> Iterator[Batch]:
    """Group readable items into batches of `size` (the last may be shorter); failures ride with their batch."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch = Batch()
    for item in items:
        (batch.failed if item.x is None else batch.good).append(item)
        if len(batch.good) == size:
            yield batch
            batch = Batch()
    if batch.good or batch.failed:
        yield batch


@dataclass
class Classified:
    """One batch through the model: its readable items (in path order), the files that failed while it filled, the
    logits (len(good) x 1000; None when none of its images could be read) and the seconds of the inference call
    alone (no decoding, no preprocessing)."""

    good: list[Item]
    failed: list[Item]
    logits: np.ndarray | None = None
    seconds: float = 0.0


def classify(model: "Model", paths: Iterable[Path], batch: int, readers: int,
             prepare: Callable[[Path], np.ndarray] | None = None) -> Iterator[Classified]:
    """Every path through `model` in batches of `batch`, decoded by `readers` threads ahead of inference (with
    `prepare`, default model.preprocess), at most max(2 x batch, 4 x readers) images ahead: enough to fill the next
    batch while this one runs, and memory that does not grow with the number of paths.

    Closing the generator closes its reader (read_ahead): use it under contextlib.closing(), so that Ctrl-C or an
    error in the consumer cancels the queued reads as soon as the consumer's block ends."""
    window = max(2 * batch, 4 * readers)
    with closing(read_ahead(paths, prepare or model.preprocess, readers=readers, window=window)) as items:
        for b in batches(items, batch):
            if not b.good:
                yield Classified(b.good, b.failed)
                continue
            t0 = time.perf_counter()
            logits = model.logits(b.stack() if len(b.good) > 1 else b.good[0].x)
            yield Classified(b.good, b.failed, logits.reshape(len(b.good), -1), time.perf_counter() - t0)
