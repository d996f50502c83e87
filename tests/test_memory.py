"""Rule steps return freed batch buffers to the system (wavefold.memory).

Resident memory over a real batch loop varies from run to run with the threads' timing (the bench,
bench/malloc_threshold.py, measures it); what is deterministic is where glibc puts a block: after a
large block was freed, glibc's default serves the next batch-sized one from the heap (where freed
memory stays), while inside a rule step it gets a mapping of its own (given back when freed).
"""

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

PROBE = textwrap.dedent("""
    import ctypes, sys, types
    import numpy as np
    sys.path.insert(0, {scripts!r})
    from wavefold.steps import rule_step

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2

    def mapped_bytes_of_a_batch():
        first = np.ones(8 << 20, np.uint8)  # a batch buffer: mapped, then freed (glibc raises its threshold)
        del first
        batch = np.ones(4 << 20, np.uint8)  # the next, smaller batch
        return libc.mallinfo2().hblkhd

    if sys.argv[1] == "step":
        with rule_step(types.SimpleNamespace(log=[sys.argv[2]]), "probe"):
            print(mapped_bytes_of_a_batch())
    else:
        print(mapped_bytes_of_a_batch())
""")


def mapped(tmp_path, how: str) -> int:
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(scripts=str(REPO / "scripts")))
    result = subprocess.run([sys.executable, str(script), how, str(tmp_path / "probe.log")], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_inside_a_rule_step_a_batch_buffer_is_mapped_and_given_back_when_freed(tmp_path):
    assert mapped(tmp_path, "plain") < 1 << 20  # glibc's default: from the heap, kept after it is freed
    assert mapped(tmp_path, "step") >= 4 << 20  # a mapping of its own
