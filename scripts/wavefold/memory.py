"""Give freed batch buffers back to the system during long streamed passes (glibc's malloc).

glibc serves a large allocation with its own memory mapping, returned when freed, but each time such
a mapping is freed it raises its threshold to that size (up to 32 MB on 64-bit). After the first
batches, batch-sized buffers (a batch of clips, its features: 8-100 MB) come from the heaps of
torch's threads instead, which fragment, and glibc keeps what is freed there: predict_test's peak
memory grew with the test set (959 MB on 16 k clips, 2,176 MB on 158 k), though no array of its own
does. How much it grows varies with the threads' timing from one run to the next.

Two cures, measured by bench/malloc_threshold.py (docs/figures.md): fixing the threshold (every
buffer mapped and unmapped: flat memory, but every batch faults its pages in afresh, 28% slower on
the CPU), and :func:`release_freed` every few batches (``malloc_trim``: the heaps' free pages handed
back), which the streamed passes use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


@lru_cache(maxsize=1)
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_freed() -> bool:
    """Hand the free pages of every malloc heap back to the system (glibc's ``malloc_trim(0)``);
    False where there is no glibc (macOS, musl), whose allocators need nothing of the kind here."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def pin_mmap_threshold(threshold: int = 1 << 20) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (the bench's other cure)."""
    libc = _glibc()
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold))) if libc is not None else False
