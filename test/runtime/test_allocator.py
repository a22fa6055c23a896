"""runtime/allocator.py: after keep_large_buffers(), per-frame megabyte buffers come back
from the heap instead of costing a page fault per 4 KiB page every frame."""
import os
import subprocess
import sys

from depth_nodes.runtime import allocator

# A node's frame in miniature: a 640x480 float32 depth (1.2 MB) and a tensor-sized buffer
# of varying size, written and freed 50 times; prints the minor page faults of the loop.
FRAMES = r'''
import resource, sys
import numpy as np
from depth_nodes.runtime.allocator import keep_large_buffers
if sys.argv[1] == 'tuned':
    applied, note = keep_large_buffers()
    assert applied, note
def frames(n):
    for i in range(n):
        depth = np.ones(480 * 640, np.float32)
        tensor = np.ones(230_000 + (i % 3) * 40_000, np.float32)
        del depth, tensor
frames(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
frames(50)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', FRAMES, mode], capture_output=True, text=True,
                         check=True, env={**os.environ, allocator.ENV: '1'})
    return int(out.stdout.split()[-1])


def test_tuned_process_reuses_frame_buffers_without_page_faults():
    plain, tuned = page_faults('plain'), page_faults('tuned')
    # 50 frames of 1.2 MB (300 pages) + ~1 MB: without the setting glibc hands a good part
    # of them back and forth (about 180 faults per frame here); with it, none after warm-up.
    assert plain > 1000
    assert tuned < 50


def test_environment_variable_turns_it_off(monkeypatch):
    monkeypatch.setenv(allocator.ENV, '0')
    applied, note = allocator.keep_large_buffers()
    assert not applied and 'DEPTH_NODES_MALLOPT=0' in note
