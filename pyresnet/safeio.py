"""Reading and writing files that a user, or someone else, may have crafted.

Every file pyresnet reads comes through read_regular(): it must be a regular file (a FIFO, a device such as
/dev/zero, or a directory is refused at once instead of hanging or reading without end), and its size is checked
against a cap before a byte is read, so memory is bounded by the cap whatever the file claims. Every directory
pyresnet writes is written by publish_dir(): built in a fresh private temporary directory beside the target, files
created exclusively and without following symlinks, then renamed into place, so that a failure leaves nothing
half-written and a symlink planted in the target cannot redirect a write outside it. Every single file pyresnet
writes (an ONNX export, bench's JSON and plot, a calibration, a diff page, generated code) is written by
write_file() or write_files(): the target must be absent or a regular file (a FIFO, a device, a directory or a
symlink is refused, never replaced), the data goes into a temporary file beside it, created exclusively, which is
fsynced and renamed over the target, so a failure (a full disk) leaves the earlier file as it was and no temporary
file behind. check_writable() is the same refusal done before any work, so that a long command does not fail at
its last step.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence, Union

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
        # What fstat said, plus one byte to see whether it grew since: read(n) reserves n bytes up front, so asking
        # for `limit` would reserve the whole cap (hundreds of MiB for an image) for every file, however small.
        chunks = [f.read(size + 1)]
        total = len(chunks[0])
        while total > size and total <= limit:  # it grew: read on, in bounded pieces, up to one byte past the cap
            chunk = f.read(min(MiB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
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


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse_non_regular(p: Path, error: Callable[[str], Exception], what: str) -> None:
    """Raise error(sentence) when p exists and is not a regular file (a symlink counts as not regular)."""
    try:
        st = os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):  # absent (check_writable then looks at its directory)
        return
    except OSError as e:  # a name too long, a directory we may not search
        raise error(f"{what} {p} cannot be written ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {p} is {_kind(st.st_mode)}; only a new file or an existing regular file is written "
                    "(give another path)")


def check_writable(path: str | os.PathLike, error: Callable[[str], Exception], what: str = "output") -> Path:
    """The checks of write_file(), done before any work: `path` names a file (not a directory, not ending in '/'),
    is absent or a regular file, and its directory exists and is writable by this process. Returns it as a Path.

    `what` starts each sentence (e.g. "--json"). Writability is os.access's answer (a read-only mount is refused,
    root passes permission bits, as the kernel decides), so the write itself can still fail later on a full disk.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    p = Path(text)
    if not text.strip() or text.endswith(("/", os.sep)) or p.name in ("", ".", ".."):
        raise error(f"{what} must name a file to write, got '{text}'")
    _refuse_non_regular(p, error, what)
    parent = p.parent
    if not parent.exists():
        raise error(f"{what} {p}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise error(f"{what} {p}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{what} {p}: the directory {parent} is not writable")
    return p


Writer = Union[bytes, Callable[[BinaryIO], None]]


def _stage(p: Path, data: Writer) -> Path:
    """Write `data` (bytes, or a function writing into a binary file) into a new temporary file beside p, fsynced;
    return its path. On failure nothing is left."""
    while True:
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = create_exclusive(tmp)
            break
        except FileExistsError:  # someone's file, or a link, by that name: never touched, another name is tried
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _fsync_dir(d: Path) -> None:
    """Make a rename in d durable; file systems that cannot fsync a directory are left as they are."""
    try:
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_files(files: Sequence[tuple[str | os.PathLike, Writer]], error: Callable[[str], Exception],
                what: str = "output") -> list[Path]:
    """Write several files, each as write_file() does, so that a failure changes none of them.

    Every target is checked (check_writable) and every temporary file written and fsynced before the first
    rename; the renames come last, in the order given (put the file that commits the others, e.g. a manifest,
    last). Each target is checked again just before the renames, so a FIFO or a device put there meanwhile is
    refused rather than replaced. A failing write (a full disk) therefore changes nothing; a rename that fails
    after others succeeded (rare: every byte is already on disk) is not undone.
    """
    targets = [check_writable(path, error, what) for path, _ in files]
    staged: list[Path] = []
    try:
        for p, (_, data) in zip(targets, files):
            try:
                staged.append(_stage(p, data))
            except OSError as e:  # a full disk, a quota: said of the target, not of our temporary file
                if e.strerror is None:
                    raise
                raise error(f"{what} {p} could not be written ({e.strerror}); nothing was changed") from None
        for p in targets:
            _refuse_non_regular(p, error, what)
        for p in list(targets):
            os.rename(staged[0], p)  # replaces a regular file; the name is checked just above
            staged.pop(0)
        for d in dict.fromkeys(p.parent for p in targets):
            _fsync_dir(d)
    finally:
        for tmp in staged:  # what was not renamed into place
            tmp.unlink(missing_ok=True)
    return targets


def write_file(path: str | os.PathLike, data: Writer, error: Callable[[str], Exception],
               what: str = "output") -> Path:
    """Write one file safely: refuse a target that exists and is not a regular file (FIFO, device, directory,
    symlink) or a path naming a directory; write `data` (bytes, or a function given a binary file to write into)
    into a temporary file beside it, created exclusively and without following symlinks; fsync; rename it over the
    target; fsync the directory. On any failure the temporary file is removed and an earlier file at `path` is
    left intact. Every failure the user can do something about (a full disk too) is error(sentence)."""
    return write_files([(path, data)], error, what)[0]
