"""Many images through one model: reader threads decode ahead of inference, images go in batches, memory bounded.

    for batch in batches(read_ahead(paths, model.preprocess, readers=1), size=8):
        ... batch.good: [(path, x)], batch.failed: [(path, message)] ...

read_ahead() keeps at most `window` images decoded ahead of the consumer (0.6 MB each), whatever the number of
paths, and yields them in the order of the paths; a file that cannot be read is an item with its error sentence,
not an exception, so one bad upload does not stop a folder. Decoding (OpenCV) and inference (C++) both release the
GIL, so a reader thread overlaps the inference of the previous batch.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import UserError


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


def read_ahead(paths: Iterable[Path], prepare: Callable[[Path], np.ndarray], readers: int = 1,
               window: int = 16) -> Iterator[Item]:
    """prepare(path) for every path on `readers` threads, at most `window` ahead; items in path order."""
    if readers < 1 or window < 1:
        raise ValueError("read_ahead needs readers >= 1 and window >= 1")

    def run(p: Path) -> Item:
        try:
            return Item(p, prepare(p))
        except UserError as e:  # an unreadable image: reported by the consumer, the others go on
            return Item(p, error=str(e))

    todo = iter(paths)
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="pyresnet-reader") as pool:
        pending: deque[Future[Item]] = deque()
        for p in todo:
            pending.append(pool.submit(run, p))
            if len(pending) >= window:
                break
        while pending:
            item = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(run, nxt))
            yield item


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
