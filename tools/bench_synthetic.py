#!/usr/bin/env python3
"""Throughput of the synthetic dataset on one CPU core (does it keep up with training?).

    python tools/bench_synthetic.py                  # 256x256, mixed scenes, all outputs
    python tools/bench_synthetic.py --scene outdoor --samples 100 --outputs rgb depth

Prints samples/s by wall clock and by the process's CPU time: on a machine shared with
other jobs the wall-clock rate drops while the CPU-time rate stays what one free core does.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One core: no BLAS/OpenMP worker threads; set before numpy is imported.
for variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(variable, '1')

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # training/ from the checkout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--scene', default='mixed', choices=('indoor', 'outdoor', 'mixed'))
    parser.add_argument('--samples', type=int, default=60)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--outputs', nargs='+', default=None,
                        help='subset of rgb depth right disparity nir semidense_mask')
    args = parser.parse_args(argv)

    import cv2

    from training.datasets.synthetic import OUTPUTS, SyntheticScenes
    cv2.setNumThreads(1)
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    dataset = SyntheticScenes('train', size=args.samples + 1, height=args.height,
                              width=args.width, scene=args.scene,
                              outputs=tuple(args.outputs or OUTPUTS))
    dataset[args.samples]          # warm-up: texture bank, caches
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(args.samples):
        dataset[index]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f'synthetic {args.scene} {args.width}x{args.height}, outputs '
          f'{",".join(dataset.outputs)}: {args.samples / cpu:.1f} samples/s per CPU core '
          f'(CPU time), {args.samples / wall:.1f} samples/s wall clock, '
          f'{1000 * cpu / args.samples:.1f} ms/sample')
    return 0


if __name__ == '__main__':
    sys.exit(main())
