"""Run directories: one run's results per directory, one writer at a time, files written whole.

* ``prepare_out``: the directory exists and can be written;
* ``check_fresh``: a directory that holds another run's results (``RESULT_FILES``) is refused
  unless the run resumes it or is told to overwrite it: a repeated command never replaces a
  finished run's results or a killed run's checkpoint by accident;
* ``lock``: an exclusive ``fcntl.flock`` on ``DIR/.purembrl.lock`` for as long as the run
  writes there; a second run on the same directory is refused with the holder's pid. The
  kernel drops the lock when its process dies (even by SIGKILL), so a killed run's lock file
  never blocks a resume. Re-entrant within one process (the command line holds it around
  ``run``, which takes it again).

Files are written whole or not at all by ``purembrl.checkpoint.write_atomically`` (a unique
temporary file beside each, renamed over it: two writers never share a temporary file).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile

RESULT_FILES = ("checkpoint.npz", "metrics.json", "curve.csv", "curve.png", "sweep.json",
                "sweep.csv", "sweep.png")
RESULT_DIRS = ("tensorboard", "wandb")  # --log backends' files (``purembrl.driver.logs``)
LOCK_FILE = ".purembrl.lock"

_held: dict[str, list] = {}  # real path of a locked directory -> [file descriptor, depth]


def prepare_out(out: str | os.PathLike) -> None:
    """Create the output directory; ``ValueError`` if it is a file or cannot be written."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out}: exists and is not a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create directory ({err.strerror})") from None
    # A probe file rather than os.access: root passes os.access on read-only mounts.
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".purembrl-probe-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: directory is not writable ({err.strerror})") from None


def existing_results(out: str | os.PathLike) -> list[str]:
    """The names of ``RESULT_FILES`` and ``RESULT_DIRS`` present in ``out`` (none if it does
    not exist)."""
    return ([name for name in RESULT_FILES if os.path.isfile(os.path.join(out, name))]
            + [name for name in RESULT_DIRS if os.path.isdir(os.path.join(out, name))])


def check_fresh(out: str | os.PathLike, overwrite: bool = False) -> None:
    """``ValueError`` if ``out`` holds another run's results and ``overwrite`` is False; reads
    only, so a refused run has touched nothing."""
    found = existing_results(out)
    if found and not overwrite:
        raise ValueError(f"--out {out} holds another run's results ({', '.join(found)}); "
                         f"--resume {out} continues that run, --overwrite replaces it, or "
                         "choose another --out")


def remove_results(out: str | os.PathLike) -> None:
    """Delete the previous run's ``RESULT_FILES`` and ``RESULT_DIRS`` from ``out``
    (``--overwrite``; call it with the lock held), so that no file of the old run is mistaken
    for the new run's (nor a logger's old points for points already written)."""
    for name in existing_results(out):
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            pid = f.read().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def acquire(out: str | os.PathLike) -> None:
    """Take ``out``'s lock (re-entrant in this process); ``ValueError`` naming the holder's pid
    if another process holds it. Release with ``release``."""
    key = os.path.realpath(out)
    if key in _held:
        _held[key][1] += 1
        return
    path = os.path.join(out, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create its lock file ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ValueError(f"--out {out} is in use by another run ({_holder(path)}); wait for "
                             "it to finish or choose another --out") from None
        raise ValueError(f"--out {out}: cannot lock it ({err.strerror})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = [fd, 1]


def release(out: str | os.PathLike) -> None:
    """Undo one ``acquire``; the last one drops the lock (its file stays, unlocked)."""
    key = os.path.realpath(out)
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[key]
        os.close(entry[0])  # closing the descriptor drops the flock


@contextlib.contextmanager
def lock(out: str | os.PathLike | None):
    """``with lock(out):`` holds ``out``'s lock for the block (nothing for ``None``)."""
    if out is None:
        yield
        return
    acquire(out)
    try:
        yield
    finally:
        release(out)
