"""The C heap under model passes: glibc's settings for a process that runs them, and freed pages given back.

A model pass allocates and frees activations of tens to hundreds of MB (CNN14's first block at batch 8: 131 MB
each). glibc serves every block above its mmap threshold (32 MB at most) with a fresh ``mmap`` and unmaps it on
``free``, and returns the top of its heap to the kernel beyond 128 KB free, so each pass faults all its pages in
anew and the kernel zeroes them: a third of the CPU time of CNN14 + VGGish passes on a 2-core machine
(``benchmarks/RESULTS.md`` (s)). ``keep_freed_heap`` makes glibc serve them from its heap and keep what is freed
for the next pass; ``return_free_heap`` gives it back between chunks of files, so the resident memory stays bounded.

``keep_freed_heap`` is called when a process loads its first model program (``artifacts``), whatever loads it: the
command line, the service, ``Embedder``. Setting any of ``ENVIRONMENT`` leaves glibc as set. It changes where memory
comes from, never a computed bit.
"""
from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
"""glibc's ``mallopt`` parameters (``malloc.h``)."""
TRIM_THRESHOLD = 2**30
"""Free bytes at the heap's top that glibc keeps instead of returning (its default: 128 KB, growing to 64 MB)."""
ENVIRONMENT = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
               "GLIBC_TUNABLES")
"""Variables through which a user sets glibc's heap; when any is set, it is left as they set it."""


@functools.cache
def _glibc() -> Any | None:
    """The C library when it is glibc (``mallopt`` and ``malloc_trim`` are its own), else None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc
    except (OSError, AttributeError):  # macOS, Windows, musl: their allocators need none of this
        return None


@functools.cache
def keep_freed_heap() -> bool:
    """Serve large blocks from glibc's heap and keep freed pages there, for the rest of this process.

    Returns
    -------
    bool
        True when the settings were made; False where the C library is not glibc, or where the user set the heap
        through one of ``ENVIRONMENT`` (then it is left as they set it).

    See Also
    --------
    mallopt(3) : ``M_MMAP_MAX`` (0: no block is mmapped) and ``M_TRIM_THRESHOLD``.
    """
    libc = _glibc()
    if libc is None or any(name in os.environ for name in ENVIRONMENT):
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def return_free_heap() -> None:
    """Give the heap pages freed so far back to the OS (glibc's ``malloc_trim``); nothing elsewhere.

    Called after each chunk of files: its passes reuse the pages ``keep_freed_heap`` keeps, and without this the
    resident memory creeps up with the number of files, as freed pages scattered across the heap are rarely reused
    whole (``benchmarks/RESULTS.md`` (b)).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


__all__ = ["keep_freed_heap", "return_free_heap"]
