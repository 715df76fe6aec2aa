"""Reading and writing files that a user, or someone else, may have crafted.

Every file pyresnet reads comes through read_regular(): it must be a regular file (a FIFO, a device such as
/dev/zero, or a directory is refused at once instead of hanging or reading without end), and its size is checked
against a cap before a byte is read, so memory is bounded by the cap whatever the file claims. Every directory
pyresnet writes is written by publish_dir(): built in a fresh private temporary directory beside the target, files
created exclusively and without following symlinks, then renamed into place, so that a failure leaves nothing
half-written and a symlink planted in the target cannot redirect a write outside it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

MiB = 1 << 20


def describe_size(n: int) -> str:
    """Bytes in words: '512 MiB', '1.5 kB'."""
    if n >= MiB:
        return f"{n / MiB:.0f} MiB" if n % MiB == 0 else f"{n / MiB:.1f} MiB"
    return f"{n / 1024:.1f} kB" if n >= 1024 else f"{n} bytes"


def open_regular(path: str | os.PathLike, error: Callable[[str], Exception], what: str) -> tuple[int, int]:
    """Open `path` for reading, refusing anything that is not a regular file; returns (fd, size in bytes).

    O_NONBLOCK makes opening a FIFO return at once (instead of waiting for a writer), and fstat on the open file
    decides, so the check and the read concern the same file.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise error(f"{what} {p} is a directory, not a file") from None
    except OSError as e:
        raise error(f"cannot open {what} {p} ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
        raise error(f"{what} {p} is {kind}; only regular files are read")
    os.set_blocking(fd, True)
    return fd, st.st_size


def read_regular(path: str | os.PathLike, limit: int, error: Callable[[str], Exception], what: str,
                 how_to_raise: str = "") -> bytes:
    """The whole content of a regular file of at most `limit` bytes; anything else raises error(sentence)."""
    fd, size = open_regular(path, error, what)
    with os.fdopen(fd, "rb") as f:
        if size > limit:
            raise error(f"{what} {path} has {describe_size(size)}, more than the limit of {describe_size(limit)}"
                        + (f" ({how_to_raise})" if how_to_raise else ""))
        data = f.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise error(f"{what} {path} grew past the limit of {describe_size(limit)} while being read")
    return data


def create_exclusive(path: Path) -> int:
    """A new file, opened for writing: never an existing file, never through a symlink."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                   | getattr(os, "O_CLOEXEC", 0), 0o644)


def write_new(path: Path, data: bytes) -> None:
    """Write `data` into a file that must not exist yet (see create_exclusive)."""
    with os.fdopen(create_exclusive(path), "wb") as f:
        f.write(data)


@contextmanager
def publish_dir(out: Path, may_replace: Callable[[Path], str | None], error: Callable[[str], Exception]
                ) -> Iterator[Path]:
    """Yield a fresh private directory beside `out`; when the block succeeds, it becomes `out`.

    out must not be a symlink or a file. If out is an existing directory, may_replace(out) returns None when it may
    be replaced (e.g. it is an earlier weights directory) or a sentence saying why not. On any exception the
    temporary directory is removed and out is left as it was.
    """
    out = Path(out)
    if not out.name or out.name in (".", ".."):
        raise error(f"'{out}' does not name a directory to write")
    if out.is_symlink():
        raise error(f"{out} is a symbolic link; give the real directory path to write into")
    if out.exists():
        if not out.is_dir():
            raise error(f"{out} exists and is not a directory")
        why = may_replace(out)
        if why:
            raise error(why)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private (0700); the result is an ordinary directory
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.rename(out, old / "d")
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old / "d", out)  # put the old one back
                raise
            shutil.rmtree(old, ignore_errors=True)  # rmtree never follows symlinks out of the tree
        else:
            try:
                os.rename(tmp, out)
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):  # created meanwhile by someone else
                    raise error(f"{out} appeared while it was being written; nothing was changed") from None
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
