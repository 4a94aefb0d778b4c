"""One run at a time per report directory: a lock file holding the run's pid.

The file ``<dir>/.hessbench-run.lock`` is created with ``O_CREAT | O_EXCL`` (atomic: of
two runs starting together one gets it), holds the owner's pid and is removed when the
run ends. A lock whose pid no longer runs (a killed run) is taken over, and
:attr:`RunLock.note` says so; a live one makes :meth:`RunLock.acquire` raise
:class:`DirectoryInUse`.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "DirectoryInUse", "RunLock"]

LOCK_NAME = ".hessbench-run.lock"


class DirectoryInUse(RuntimeError):
    """Another running process holds the report directory's lock."""


class RunLock:
    """The lock of report directory ``directory`` (created if missing, removed again on
    release when this lock created it and nothing was written into it)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.note: str | None = None
        self._held = False
        self._made_dir = False

    def acquire(self) -> RunLock:
        """Take the lock (see the module docstring); returns ``self``."""
        self._made_dir = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._create():
            holder = self._holder()
            if holder is not None and _alive(holder):
                raise self._busy(holder)
            self.path.unlink(missing_ok=True)
            if not self._create():  # another run took it over first
                raise self._busy(self._holder())
            self.note = (f"took over the stale lock {self.path} of pid {holder}, which is "
                         "no longer running" if holder is not None
                         else f"took over the unreadable lock {self.path}")
        self._held = True
        return self

    def release(self) -> None:
        """Remove the lock file if this lock holds it (idempotent)."""
        if self._held and self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)
        self._held = False
        if self._made_dir:
            try:
                self.directory.rmdir()  # only succeeds when the run wrote nothing
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return True

    def _holder(self) -> int | None:
        """The pid in the lock file; None when it is missing or not a positive integer."""
        try:
            pid = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid > 0 else None

    def _busy(self, holder: int | None) -> DirectoryInUse:
        return DirectoryInUse(f"report directory {self.directory} is in use by another "
                              f"hessbench run (pid {holder}, lock file {self.path}): wait for "
                              "it to finish or choose another report directory")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on Windows, where this cannot be probed safely, always
    assumed: delete a stale lock file by hand there)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True
