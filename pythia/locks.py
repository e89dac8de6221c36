"""One writer per directory: a lock the operating system drops when its process dies.

A command that writes into a directory (``pythia train`` into its run directory, a data
build stage into the directories of its outputs) holds an exclusive ``flock`` on a lock
file beside that directory while it runs. A second writer fails at once with
:class:`DirectoryInUseError`, naming the holder's process id, host and command. The kernel
releases a flock when its holder exits in any way (crash, SIGKILL, OOM killer), so a lock
left by a dead process never blocks the next run: there is nothing to clean up, and a
killed ``pythia train`` resumes with ``--resume`` straight away.

Why these choices:

* ``fcntl.flock`` and not a PID file: a PID file outlives its process and PIDs are reused;
  a flock cannot be stale. (``filelock.FileLock`` is the same flock, but it truncates the
  lock file at every attempt, so the holder could not record who it is in it.)
* the lock file sits *beside* the directory (``<parent>/.<name>.lock``), not inside it,
  because some stages replace their directory whole (``pythia.io.atomic_dir``), which
  would swap a lock file inside it for a new, unlocked one;
* the holder writes ``{"pid", "host", "command", "started"}`` into the locked file, for the
  message a second writer prints;
* flock is advisory (only writers that ask are excluded) and works on local file systems
  and on NFS (Linux emulates it with POSIX locks there).

Locks are re-entrant within a process: code that already holds a directory (``pythia data
build`` running stage after stage) can take it again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from pythia.errors import PythiaError


class DirectoryInUseError(PythiaError):
    """Another live process holds the write lock of a directory."""


# lock file path -> (file descriptor, how many times this process entered it)
_held: dict[str, list[int]] = {}


def lock_path(directory: str | Path) -> Path:
    """The lock file of ``directory``: ``<parent>/.<name>.lock``."""
    d = Path(directory).absolute()
    return d.parent / f".{d.name}.lock"


def holder(path: str | Path) -> dict | None:
    """What the holder of lock file ``path`` recorded (pid, host, command, started), if readable.

    A record naming a process of this host that no longer runs is a leftover of an earlier
    holder (the new one has not written its own yet): None.
    """
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
        return None
    if rec.get("host") == socket.gethostname() and not pid_alive(rec["pid"]):
        return None
    return rec


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def describe(rec: dict | None) -> str:
    """``pythia train (pid 123 on host h, since 2026-01-01 10:00:00)``, or a vaguer phrase."""
    if not rec:
        return "another process"
    host = "" if rec.get("host") == socket.gethostname() else f" on host {rec.get('host')}"
    since = f", since {rec['started']}" if rec.get("started") else ""
    return f"{rec.get('command') or 'a process'} (pid {rec['pid']}{host}{since})"


def in_use_message(directory: str | Path, lock_file: Path) -> str:
    """One line: who holds ``directory`` and what to do."""
    rec = holder(lock_file)
    stop = f"stop it (kill {rec['pid']})" if rec else "stop it"
    return (
        f"{directory} is in use by {describe(rec)}; wait for it to finish or {stop}, then rerun "
        f"(its lock, {lock_file}, is released when that process exits)"
    )


def acquire_fd(path: Path, command: str) -> int | None:
    """Open lock file ``path`` and take its flock without waiting; record who holds it.

    Returns the open descriptor (the lock lives as long as it stays open, in this process or
    across ``exec``), or None when another process holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "argv": sys.argv,
        "started": _dt.datetime.now().isoformat(sep=" ", timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


@contextlib.contextmanager
def exclusive(directories: str | Path | Iterable[str | Path], command: str) -> Iterator[None]:
    """Hold the write locks of ``directories`` (one or several) for the duration of the block.

    ``command`` says who holds it (``pythia train``), for the message another writer prints.
    Raises :class:`DirectoryInUseError` if a live process holds any of them; the locks taken
    so far are released again.
    """
    dirs = [directories] if isinstance(directories, (str, Path)) else list(directories)
    taken: list[str] = []
    try:
        for d in sorted({str(Path(x).absolute()) for x in dirs}):
            path = lock_path(d)
            key = str(path)
            if key in _held:
                _held[key][1] += 1
            else:
                fd = acquire_fd(path, command)
                if fd is None:
                    raise DirectoryInUseError(in_use_message(d, path))
                _held[key] = [fd, 1]
            taken.append(key)
        yield
    finally:
        for key in reversed(taken):
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])  # closing the descriptor drops the flock
