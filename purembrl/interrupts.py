"""Clean interrupts for the command line: SIGINT (Ctrl-C) and SIGTERM stop a run at a safe point.

Python runs a signal handler only when its main thread returns to the interpreter, which it does
not do for the minutes XLA may spend compiling (and a KeyboardInterrupt raised as it comes out
of a compile crashed the process in 2 of 4 tries, rc 139). So the handlers here do nothing in
Python; the signal's number reaches a watcher thread at once through ``signal.set_wakeup_fd``,
and the watcher decides:

* while the run is **before its first chunk of this process** (imports, checks, compilation;
  nothing learned yet that a checkpoint does not hold), or on a **second** signal: exit at once
  (``os._exit``, after a checkpoint being written is complete), with one line on stderr;
* otherwise: ask the driver to stop after the chunk that is running and its checkpoint
  (``requested``), which then writes the partial results; the command prints one line saying
  how to resume and exits 130 (SIGINT) or 143 (SIGTERM).

Either way the last complete checkpoint is kept, and resuming from it is bit-identical to an
uninterrupted run. ``install`` is called once by the command line; library calls of ``run``
keep Python's own behaviour.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = {"installed": False, "requested": None, "graceful": False, "out": None}
_saving = threading.Lock()  # held while a checkpoint is written: an exit at once waits for it


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def resume_hint(out) -> str:
    return (f"resume with the same command and --resume {out}" if out is not None
            else "nothing was saved (no --out)")


def _watch(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 1)
        except OSError:
            return
        if not data:
            return
        signum = data[0]
        if _state["graceful"] and _state["requested"] is None:
            _state["requested"] = signum
            print(f"\n{_name(signum)}: stopping after the current chunk and its checkpoint "
                  f"(send it again to stop at once)", file=sys.stderr, flush=True)
            continue
        with _saving:  # never leave a checkpoint half-written (it is atomic anyway)
            out = _state["out"]
            kept = ("the last complete checkpoint is kept; " + resume_hint(out)
                    if out is not None and os.path.exists(os.path.join(out, "checkpoint.npz"))
                    else "nothing of this run was saved yet")
            print(f"\n{_name(signum)}: stopped at once ({kept})", file=sys.stderr, flush=True)
            os._exit(exit_code(signum))


def install() -> None:
    """Route SIGINT and SIGTERM to the watcher (main thread only; idempotent)."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in SIGNALS:
        signal.signal(signum, lambda *_: None)  # the watcher acts; Python need not
    threading.Thread(target=_watch, args=(read_fd,), daemon=True,
                     name="purembrl-interrupts").start()
    _state["installed"] = True


def set_out(out) -> None:
    """The run directory the messages name."""
    _state["out"] = None if out is None else os.fspath(out)


def set_graceful(graceful: bool) -> None:
    """True once this process has finished a chunk: a first signal then waits for the chunk."""
    _state["graceful"] = graceful


def requested() -> int | None:
    """The signal that asked the run to stop after its current chunk, if any."""
    return _state["requested"]


def saving():
    """``with saving():`` around a checkpoint write (an exit at once waits for it)."""
    return _saving
