"""Keep freed batch buffers from piling up in a step's process (glibc's malloc).

glibc serves a large allocation with its own memory mapping, returned to the system when freed, but
each time such a mapping is freed it raises its threshold to that size (up to 32 MB on 64-bit). After
the first batch, batch-sized buffers (a batch of clips, its features: 8-100 MB) come from the heap
instead, which fragments between torch's threads and is never given back: predict_test's resident
memory grew by ~10 MB per batch of 256 clips (959 MB on 16 k test clips, 2,176 MB on 158 k).
A fixed threshold keeps them mapped, so each one is returned when freed (bench/malloc_threshold.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
#: Blocks of this size or more get mappings of their own. Setting it also turns off glibc's
#: raising of it (mallopt(3)); 1 MB keeps the many small tensors of a step on the heap.
MMAP_THRESHOLD = 1 << 20


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; False where there is no
    glibc (macOS, musl), whose allocators need nothing of the kind here."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        return False
