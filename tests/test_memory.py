"""Streamed passes hand freed batch memory back to the system (wavefold.memory).

Resident memory over a real batch loop varies from run to run with the threads' timing (the bench,
bench/malloc_threshold.py, measures it); what is deterministic is what glibc does with one freed
batch-sized block that came from the heap, and that the streamed passes ask for it.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import REPO

PROBE = textwrap.dedent("""
    import sys
    import numpy as np, psutil
    sys.path.insert(0, {scripts!r})
    from wavefold.memory import release_freed

    rss = lambda: psutil.Process().memory_info().rss
    first = np.ones(16 << 20, np.uint8)  # a batch buffer, mapped; freeing it raises glibc's threshold
    del first
    batch = np.ones(8 << 20, np.uint8)  # so the next one comes from the heap
    kept = np.ones(1 << 10, np.uint8)  # and a small result allocated after it
    before = rss()
    del batch
    freed = before - rss()  # what freeing gave back by itself
    released = release_freed()
    print(freed, before - rss(), released)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_release_freed_hands_a_freed_heap_block_back(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(scripts=str(REPO / "scripts")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    freed, after_release, released = result.stdout.split()
    assert int(freed) < 1 << 20  # glibc kept the 8 MB in the heap
    assert int(after_release) >= 7 << 20 and released == "True"


def test_streamed_passes_release_every_few_batches(monkeypatch):
    from wavefold.training import inference

    calls = []
    monkeypatch.setattr(inference, "release_freed", lambda: calls.append(1))
    clips = np.zeros((20 * inference.RELEASE_EVERY + 3, 160), np.int16)
    batches = list(inference._batches(clips, None, None, 1, torch.device("cpu")))
    assert len(batches) == len(clips) and len(calls) == 20
