"""Sweep worker processes die with the sweep that started them, however it ends (even ``kill -9``).

:func:`die_with_parent` is the initializer of every local worker process. It does two things:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker the moment its parent
  process exits — immediate, and it works while the worker is busy in C code;
- everywhere, a daemon thread waits on the parent's sentinel (``multiprocessing.parent_process()``, a pipe
  that closes when the parent exits, whatever the start method) and ends the worker with ``os._exit``. This is
  the fallback where ``prctl`` is missing, and it also covers a parent that died before the ``prctl`` call.

A worker killed this way writes nothing: finished points are cached by the sweep process itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading

#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1
#: Exit status of a worker that ends because its sweep is gone.
ORPHAN_EXIT_STATUS = 70


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _exit_when_parent_exits(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns when the parent's sentinel closes: the parent process has exited
    os._exit(ORPHAN_EXIT_STATUS)


def die_with_parent() -> None:
    """Initializer of a worker process: end this process as soon as the process that started it exits."""
    set_parent_death_signal()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_parent_exits, args=(parent,), name="dcsim-lifeline", daemon=True).start()
