#!/usr/bin/env python3
"""Throughput of the synthetic dataset on one CPU core (does it keep up with training?).

    python tools/bench_synthetic.py                  # 256x256, mixed scenes, all outputs
    python tools/bench_synthetic.py --scene outdoor --samples 100 --outputs rgb depth

Prints samples/s by wall clock and by the process's CPU time, best of a few rounds: on a
machine shared with other jobs the wall-clock rate drops first; the CPU-time rate is close to
what one free core does (contention for caches still lowers it somewhat).
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
    parser.add_argument('--rounds', type=int, default=3)
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
    rates = []
    for _ in range(args.rounds):   # the same samples each round; the best is least disturbed
        wall, cpu = time.perf_counter(), time.process_time()
        for index in range(args.samples):
            dataset[index]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rates.append((args.samples / cpu, args.samples / wall))
    best_cpu, best_wall = max(r[0] for r in rates), max(r[1] for r in rates)
    print(f'synthetic {args.scene} {args.width}x{args.height}, outputs '
          f'{",".join(dataset.outputs)}, {args.samples} samples x {args.rounds} rounds: '
          f'{best_cpu:.1f} samples/s per CPU core (CPU time, best round; '
          f'{1000 / best_cpu:.1f} ms/sample), {best_wall:.1f} samples/s wall clock '
          f'(best round; load average {os.getloadavg()[0]:.1f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
