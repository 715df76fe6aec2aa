"""A one-line progress bar on stderr, for downloads and benchmarks; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress(total, label).advance(n) ... close(). total 0 means unknown."""

    def __init__(self, total: float, label: str, unit: str = "", scale: float = 1.0, enabled: bool = True):
        self.total, self.label, self.unit, self.scale = total, label, unit, scale
        self.done = 0.0
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0

    def advance(self, n: float = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total > 0):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        d = self.done * self.scale
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            text = f"\r{self.label} [{bar}] {d:.1f}/{self.total * self.scale:.1f} {self.unit}"
        else:
            text = f"\r{self.label} {d:.1f} {self.unit}"
        sys.stderr.write(text)
        sys.stderr.flush()

    def relabel(self, label: str) -> None:
        """Say what is under way now; the bar is redrawn at once."""
        self.label = label
        if self.enabled:
            self._draw()

    def clear(self) -> None:
        """Erase the bar's line, so that a result printed next does not land on it (the next advance redraws)."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._last = 0.0

    def close(self) -> None:
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()
