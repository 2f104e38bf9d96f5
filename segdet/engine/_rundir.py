"""Run folders: a fresh one per run, the lock that keeps a second run out of it, and finding the one to resume.

A run holds ``RUN/segdet.lock`` while it trains: a JSON line naming its process id, host and
start time, created with ``O_CREAT | O_EXCL`` so that of two runs started into the same folder at
the same moment exactly one gets it. A new run skips a folder that holds a run or a lock (it takes
``output_dir-2``, ``-3``, ...); ``--resume`` into a locked folder stops with the process that
holds it. A lock left by a process that is no longer running on this host (a SIGKILL, a power
cut) is stale: the next run takes it over with a warning.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_NAME",
    "RunFolderLocked",
    "RunLock",
    "check_output_dir",
    "claim_new_run_dir",
    "find_last_checkpoint",
    "run_dir_of",
]

#: the lock file of a run folder
LOCK_NAME = "segdet.lock"

#: an empty or unreadable lock younger than this is taken as being written right now
_FRESH_S = 5.0


class RunFolderLocked(ValueError):
    """Another live process trains into the run folder; the message names it."""


def _has_run(folder: Path) -> bool:
    return (folder / "weights").exists() or (folder / "results.csv").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class RunLock:
    """The lock file of one run folder, held from :meth:`acquire` to :meth:`release`.

    Args:
        folder: the run folder.

    Example:
        >>> lock = RunLock(Path("runs/x")).acquire()
        >>> lock.release()
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> RunLock:
        """Create the lock file, taking over a stale one with a warning.

        Raises:
            RunFolderLocked: a live process (or one on another host) holds the folder.
            ValueError: the folder cannot be written (read-only, no permission, a file in the way).
        """
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            except OSError as exc:
                raise _unwritable(self.path.parent, exc) from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
            self.held = True
            return self
        raise RunFolderLocked(f"cannot lock {self.path}: other processes keep creating it")

    def _take_over_if_stale(self) -> None:
        holder = _read_lock(self.path)
        if holder is None:  # vanished in between, or being written
            if self.path.exists() and time.time() - self.path.stat().st_mtime < _FRESH_S:
                raise RunFolderLocked(
                    f"run folder {self.path.parent} is being claimed by another segdet process right now; "
                    "choose another output_dir"
                )
            holder = {}
        pid, host = holder.get("pid"), holder.get("host")
        here = host == socket.gethostname()
        if isinstance(pid, int) and pid != os.getpid() and (not here or _alive(pid)):
            raise RunFolderLocked(
                f"run folder {self.path.parent} is in use by segdet process {pid} on host {host} (started "
                f"{holder.get('started')}): two runs in one folder would overwrite each other's checkpoints. "
                f"Wait for it to end, choose another output_dir, or delete {self.path} if that process is gone"
            )
        who = f"process {pid} on {host} (started {holder.get('started')})" if holder else "an unknown process"
        warnings.warn(f"taking over the stale lock {self.path} of {who}, which is no longer running", stacklevel=3)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if this object holds it."""
        if self.held:
            holder = _read_lock(self.path)
            if holder is not None and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _fix(what: str) -> str:
    return "output_dir=PATH" if what == "output_dir" else f"{what} PATH"


def _unwritable(folder: Path, exc: OSError, what: str = "output_dir") -> ValueError:
    reason = {errno.EROFS: "the file system is read-only", errno.ENOSPC: "no space left on the device"}.get(
        exc.errno, exc.strerror or str(exc)
    )
    return ValueError(f"{what} {folder} is not writable ({reason}); choose a writable folder with {_fix(what)}")


def check_output_dir(output_dir: str | Path, what: str = "output_dir", create: bool = True) -> Path:
    """Make sure ``output_dir`` can be a folder segdet writes into, or stop with one clear line.

    Args:
        output_dir: the folder (a run folder, a report or prediction folder).
        what: how the message names it (``output_dir``, ``--output``).
        create: create it now; ``False`` only checks that it could be (no file in the way, the
            nearest existing folder above it writable), for a command that writes at its end.

    Raises:
        ValueError: ``output_dir`` (or a folder above it) is a file, or it cannot be created or
            written (read-only file system, no permission).
    """
    base = Path(output_dir)
    for folder in (base, *base.parents):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{what} {base}: {folder} is a file, not a folder; give a folder with {_fix(what)}")
    if not create:
        existing = next(f for f in (base, *base.parents, Path(".")) if f.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise _unwritable(base, OSError(errno.EACCES, f"{existing} is not writable"), what)
        return base
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(base, exc, what) from None
    return base


def claim_new_run_dir(output_dir: str | Path) -> tuple[Path, RunLock]:
    """``output_dir`` if it holds no run and no live lock, else the first free ``output_dir-2``, ``-3``, ..., locked.

    Returns:
        The run folder and its (held) lock.

    Raises:
        ValueError: the folder cannot be created or written (named, with the reason).
    """
    base = Path(output_dir)
    candidate, i = base, 2
    while True:
        if not _has_run(candidate):  # a stale lock of a run killed before its first checkpoint is taken over
            check_output_dir(candidate)
            try:
                return candidate, RunLock(candidate).acquire()
            except RunFolderLocked:
                pass  # another run claimed it a moment ago: try the next name
        candidate = base.with_name(f"{base.name}-{i}")
        i += 1


def find_last_checkpoint(output_dir: str | Path) -> Path:
    """The most recently written ``weights/last.pt`` of ``output_dir`` or its ``-N`` siblings.

    Raises:
        FileNotFoundError: no run of ``output_dir`` has a last.pt.
    """
    base = Path(output_dir)
    candidates = [base / "weights" / "last.pt"]
    if base.parent.is_dir():
        candidates += [
            p / "weights" / "last.pt"
            for p in base.parent.glob(f"{base.name}-*")
            if p.name[len(base.name) + 1 :].isdigit()
        ]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise FileNotFoundError(
            f"--resume: no weights/last.pt under {base} (or its -N siblings); give the checkpoint with --resume PATH"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run folder of ``.../RUN/weights/last.pt`` (the checkpoint's folder otherwise)."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent.parent if checkpoint.parent.name == "weights" else checkpoint.parent
