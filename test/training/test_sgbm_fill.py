"""tools/benchmark_dpn.py's dense SGBM baseline: holes filled along each row by the farther
(smaller) of the nearest valid disparities on either side."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))


def test_row_fill_takes_the_farther_neighbour_and_keeps_empty_rows_empty():
    from benchmark_dpn import fill_rows
    nan = np.nan
    disparity = np.array([[nan, 2.0, nan, nan, 5.0, nan],
                          [7.0, nan, 3.0, 3.5, nan, 9.0],
                          [nan, nan, nan, nan, nan, nan]], np.float32)
    filled = fill_rows(disparity)
    assert np.array_equal(filled[0], [2, 2, 2, 2, 5, 5])
    assert np.array_equal(filled[1], [7, 3, 3, 3.5, 3.5, 9])
    assert np.isnan(filled[2]).all()
