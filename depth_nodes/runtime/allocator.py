"""Keep a node's per-frame megabyte buffers in the heap instead of mapping them afresh.

glibc's malloc serves a large allocation (above M_MMAP_THRESHOLD: 128 KiB at first, then
adjusted to the largest block freed) with a new mmap, and gives memory at the top of the heap
back to the kernel once more than M_TRIM_THRESHOLD is free. A depth node allocates and frees
megabyte buffers every frame: the received CDR (0.9 MB for 640x480 rgb8), which Fast DDS
also reassembles into buffers of that size, the NumPy tensor and depth arrays, the serialized
reply (1.2 MB for 640x480 32FC1). Each buffer that comes back from the kernel is paid again in
page faults, one per 4 KiB page, which in a virtual machine can be the larger part of moving
a message (tools/benchmark_node.py measures it; DEPTH_NODES_MALLOPT=0 for the comparison).

keep_large_buffers() sets M_MMAP_THRESHOLD to 32 MiB (glibc's maximum; setting it also stops
the adjustment) and M_TRIM_THRESHOLD to 256 MiB, so freed buffers stay in the process and are
reused by the next frame. The cost is that the process keeps its peak heap (tens of MB for a
depth node) instead of returning it. DEPTH_NODES_MALLOPT=0 leaves malloc as it is; on a C
library other than glibc (musl, macOS) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = 'DEPTH_NODES_MALLOPT'
M_TRIM_THRESHOLD = -1          # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20      # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
TRIM_THRESHOLD = 256 << 20


def keep_large_buffers(mmap_threshold: int = MMAP_THRESHOLD,
                       trim_threshold: int = TRIM_THRESHOLD) -> tuple[bool, str]:
    """Apply the malloc settings to this process; (applied, one line for the log)."""
    if os.environ.get(ENV, '1').strip().lower() in ('0', 'false', 'off', 'no'):
        return False, f'malloc tuning off ({ENV}=0)'
    if not sys.platform.startswith('linux'):
        return False, f'malloc tuning skipped: {sys.platform} is not Linux/glibc'
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return False, 'malloc tuning skipped: the C library is not glibc'
    version.restype = ctypes.c_char_p
    if (libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) != 1
            or libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) != 1):
        return False, f'malloc tuning refused by glibc {version().decode()}'
    return True, (f'malloc: buffers up to {mmap_threshold >> 20} MiB reused from the heap '
                  f'(glibc {version().decode()}; {ENV}=0 to disable)')
