"""Output folders that belong to one run: checked before any work, locked, filled, then renamed in.

``reserve_run_folder(out)`` refuses a file, a non-empty folder or a place that cannot be written
with a one-line :class:`TunesmithError` before the caller does any work; it takes an exclusive
lock beside ``out`` (``.<name>.lock``), so a second run into the same ``out`` fails at once
instead of mixing its files in; the run writes into a hidden temporary sibling (``run.tmp``),
and ``run.commit()`` renames that into place in one step. A rename never merges: when ``out``
got files meanwhile, the commit fails and says where the finished output was left.

A training run is written in place instead (``staged=False``): its folder is created at once
and ``last.pt`` must survive an interruption; the lock still keeps a second run out, and
``open_run_folder`` locks an existing run folder for ``train --resume``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class RunFolder:
    """A reserved output folder. Write into ``tmp``; ``path`` is where the result ends up."""

    def __init__(self, path: Path, tmp: Path, lock_path: Path, lock_fd: int, created: list[Path], staged: bool):
        self.path, self.tmp, self.lock_path = path, tmp, lock_path
        self._lock_fd: int | None = lock_fd
        self._created = created  # folders this reservation created, deepest last
        self.staged = staged

    def commit(self) -> Path:
        """Move the finished output into place (atomically) and release the lock; returns ``path``."""
        try:
            if self.staged:
                try:
                    os.rename(self.tmp, self.path)  # replaces an empty folder, never merges
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                        raise TunesmithError(
                            f"{str(self.path)!r} got files from elsewhere while this run worked; "
                            f"its output is left in {str(self.tmp)!r}"
                        ) from None
                    raise TunesmithError(f"cannot move the output into {str(self.path)!r}: {_why(exc)}") from None
        finally:
            self._unlock()
        return self.path

    def release(self) -> None:
        """Release the lock and keep whatever was written (an unstaged run that saved something)."""
        self._unlock()

    def abort(self) -> None:
        """Remove the temporary output, the lock and the parent folders this reservation created."""
        if self.tmp in self._created:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._unlock()
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                pass

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            self.lock_path.unlink()
        except OSError:
            pass
        os.close(self._lock_fd)  # closing releases the flock
        self._lock_fd = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _lock(path: Path, out: Path) -> int:
    """An exclusive, non-blocking flock on ``path`` (created if missing); the file descriptor."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TunesmithError(f"cannot write to {str(out)!r}: {_why(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TunesmithError(f"another tunesmith run is writing to {str(out)!r}; wait for it or choose "
                                 "another folder") from None  # fmt: skip
        except OSError as exc:
            os.close(fd)
            raise TunesmithError(f"cannot lock {str(out)!r}: {_why(exc)}") from None
        try:  # the holder before us may have removed the file we opened: lock the current one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _check_target(out: Path, allow_existing: bool) -> None:
    if out.is_symlink() and not out.exists():
        raise TunesmithError(f"{str(out)!r} is a broken link")
    if not out.exists():
        return
    if not out.is_dir():
        raise TunesmithError(f"{str(out)!r} exists and is not a folder")
    if allow_existing:
        return
    try:
        empty = next(out.iterdir(), None) is None
    except OSError as exc:
        raise TunesmithError(f"cannot read {str(out)!r}: {_why(exc)}") from None
    if not empty:
        raise TunesmithError(f"{str(out)!r} is not empty; choose a new folder or remove it first")


def _make_parents(folder: Path, out: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; returns those created, outermost first."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise TunesmithError(f"cannot write to {str(out)!r}: {str(probe)!r} is not a folder")
    created = []
    try:
        for item in reversed(missing):
            item.mkdir()
            created.append(item)
    except FileExistsError:
        pass
    except OSError as exc:
        _remove(created)
        raise TunesmithError(f"cannot write to {str(out)!r}: {_why(exc)}") from None
    return created


def _remove(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def given_path(value: str | None, flag: str = "--out") -> Path | None:
    """The path a ``flag`` names (``~`` expanded), None when it was not given; an empty one is a
    one-line TunesmithError (it would otherwise mean the default, or the current folder)."""
    if value is None:
        return None
    if not str(value).strip():
        raise TunesmithError(f"{flag} is empty: name the path to write (or leave {flag} out for the default)")
    return Path(value).expanduser()


def reserve_run_folder(out: str | Path, staged: bool = True) -> RunFolder:
    """Reserve ``out`` for one run (see the module docstring); raises TunesmithError when it cannot.

    ``staged`` (default): write into the temporary sibling ``run.tmp``; ``commit()`` renames it to
    ``out``. ``staged=False``: ``out`` itself is created now and ``run.tmp == run.path``.
    """
    out = given_path(str(out))
    if out.name in ("", ".", ".."):
        out = out.resolve()
    _check_target(out, allow_existing=False)
    created = _make_parents(out.parent, out)
    lock_path = out.parent / f".{out.name}.lock"
    try:
        fd = _lock(lock_path, out)
    except TunesmithError:
        _remove(created)
        raise
    run = RunFolder(out, out, lock_path, fd, created, staged)
    try:
        _check_target(out, allow_existing=False)  # another run may have finished while we locked
        if staged:
            tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)  # a stale one of an earlier process with our pid
        else:
            tmp = out
        existed = tmp.exists()
        try:
            tmp.mkdir(exist_ok=True)
        except OSError as exc:
            raise TunesmithError(f"cannot write to {str(out)!r}: {_why(exc)}") from None
        if not existed:
            created.append(tmp)
        run.tmp = tmp
        if not os.access(tmp, os.W_OK | os.X_OK):
            raise TunesmithError(f"cannot write to {str(out)!r}: permission denied")
    except BaseException:
        run.abort()
        raise
    return run


def open_run_folder(path: str | Path) -> RunFolder:
    """Lock an existing run folder to continue writing in it (``train --resume``)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise TunesmithError(f"{str(path)!r} is not a folder")
    fd = _lock(path.parent / f".{path.name}.lock", path)
    return RunFolder(path, path, path.parent / f".{path.name}.lock", fd, [], staged=False)
