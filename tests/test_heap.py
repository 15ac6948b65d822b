"""glibc's heap under model passes: large blocks reused instead of faulted in anew, freed pages given back."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from audiofidelity.heap import _glibc, return_free_heap

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and malloc_trim are glibc's")

PROBE = """
import ctypes, json, sys
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t)
                for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "load":  # what loading a program does
    from audiofidelity import artifacts, heap
    artifacts.load("vggish", directory=sys.argv[2])
    made = heap.keep_freed_heap.cache_info().currsize == 1  # called, and only by the load
else:
    from audiofidelity.heap import keep_freed_heap
    made = keep_freed_heap()
before = mallinfo2().hblkhd
block = np.ones(2**24)  # 128 MB: above glibc's largest mmap threshold
print(json.dumps({"made": made, "mmapped": mallinfo2().hblkhd - before}))
"""


def _probe(mode, env=None, models=""):
    done = subprocess.run([sys.executable, "-c", PROBE, mode, str(models)], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_a_program_keeps_freed_heap(models_dir):
    assert _probe("load", models=models_dir) == {"made": True, "mmapped": 0}


@pytest.mark.parametrize("variable", ["MALLOC_MMAP_MAX_", "GLIBC_TUNABLES"])
def test_a_heap_set_by_the_user_is_left_as_set(variable):
    value = {"MALLOC_MMAP_MAX_": "65536", "GLIBC_TUNABLES": "glibc.malloc.mmap_max=65536"}[variable]
    probed = _probe("call", env={variable: value})
    assert probed["made"] is False and probed["mmapped"] >= 2**27  # glibc's own default: the block is mmapped


def test_freed_heap_pages_go_back_to_the_os():
    def rss_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    assert _glibc() is not None
    blocks = [np.ones(8192) for _ in range(4000)]  # 64 KB each: from the heap, below the mmap threshold
    del blocks[::4], blocks[::3]  # free half of them, scattered: glibc keeps those pages
    held = rss_mb()
    return_free_heap()
    assert held - rss_mb() > 50  # of the ~125 MB freed
