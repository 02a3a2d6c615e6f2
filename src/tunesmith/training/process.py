"""The training process and its operating system: stop requests and where memory comes from.

:class:`StopRequest` turns SIGINT/SIGTERM into a flag the loop checks between batches, so a run
saves its state and stops cleanly.

Memory, on a CPU (``train.keep_memory``, off by default): every training step allocates and
frees buffers of the same large sizes (the LSTM's inputs, outputs and workspace for 16 songs × up
to 512 steps, up to ~50 MB each). glibc's malloc serves blocks above a threshold that it keeps
raising with fresh mappings, unmaps them when they are freed, and trims the top of its heap, so
each step faults those pages in again: the erk preset's two processes took ~20 million page
faults and ~100 s of system time in a 10-minute run. :func:`keep_freed_memory` fixes the
threshold at its largest (32 MB), never trims and grows the heap 64 MB at a time;
:func:`release_freed_memory` hands what was kept back after each epoch. An epoch on all 4,790
training songs took 60–65 s instead of 72.5 s, with the same numbers (only where the memory comes
from changes), but whole runs peaked at 1.03–1.04 GB per process against 0.98–1.01 without it
(without the top pad 1.01 GB, and epochs of 67–75 s), which is why the erk preset leaves it off
(benchmarks/results/german-data.md, "Faster epochs").

oneDNN, which runs the LSTM on a CPU, keeps the kernels it built for each input shape in a cache
of 1,024 by default, and with them memory of their own; batches come in hundreds of lengths, so
over an epoch that cache grew a process by ~90 MB. :func:`limit_kernel_cache` keeps the 16 most
recent (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``): peak 809 instead of 902 MB after one epoch on all
songs, the epoch no slower (67 s against 69 s; german-data.md, "Copy scores").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading
from typing import Any


# glibc's mallopt parameters (malloc.h) and the values set
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 64 * 2**20))


@functools.cache
def _libc():
    """glibc, or None (another platform or C library: musl has no mallopt)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


KERNEL_CACHE = 16  # oneDNN kernels kept per process (its default is 1,024)


def limit_kernel_cache() -> None:
    """Keep oneDNN's cache of built kernels to :data:`KERNEL_CACHE` entries, unless the user set
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``. oneDNN reads the variable when it first builds a kernel,
    so this acts only in a process that has not run the LSTM on a CPU yet (a training run's own)."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(KERNEL_CACHE))


def keep_freed_memory() -> bool:
    """Set glibc malloc's mmap threshold to 32 MB (its largest, and no longer moving), its trim
    threshold to 2 GB (in effect never) and its top pad to 64 MB, for the rest of this process.
    Linux with glibc only; elsewhere nothing changes. Returns whether every setting took."""
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([bool(libc.mallopt(parameter, value)) for parameter, value in SETTINGS])


def release_freed_memory() -> bool:
    """Hand the free parts of malloc's heaps back to the OS now (glibc's ``malloc_trim(0)``: the
    top and every free page inside); the next allocations fault their pages in again. Returns
    whether memory was released (False elsewhere than glibc)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(libc.malloc_trim(0))


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks between batches."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if hasattr(signal, "SIGTERM") and _in_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
