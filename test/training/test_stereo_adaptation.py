"""The Motorcycle crop bag: each frame one window of both views, mirrored frames swap the
views, intrinsics follow the crop (doffs and baseline kept)."""
import numpy as np
import pytest

from training.datasets.middlebury import MOTORCYCLE
from training.stereo_adaptation import FRAME_WIDTH, crop_frames


def test_crops_keep_the_rig_and_mirrored_frames_swap_the_views():
    # Red codes the column in both views; green marks the right view.
    height, width = 100, 148
    cols = np.arange(width)
    left = np.zeros((height, width, 3), np.uint8)
    right = np.zeros((height, width, 3), np.uint8)
    left[:, :, 0] = (cols * 255 // (width - 1))[None, :]
    right[:, :, 0] = left[:, :, 0]
    right[:, :, 1] = 255                         # the right view is the green one
    frames = list(crop_frames(left, right, 4, seed=3))
    for index, (lv, rv, lc, rc) in enumerate(frames):
        assert lv.shape[1] == FRAME_WIDTH and lv.shape == rv.shape
        scale = lc.fx / MOTORCYCLE['f']
        assert rc.baseline == pytest.approx(MOTORCYCLE['baseline_mm'] / 1000.0)
        # cx_right - cx_left = doffs at the frame's scale, mirrored or not.
        assert (rc.cx + 0.5) - (lc.cx + 0.5) == pytest.approx(MOTORCYCLE['doffs'] * scale)
        mirrored = index % 2 == 1
        assert (lv[:, :, 1].mean() > 200) == mirrored          # left view from the right
        red = lv[lv.shape[0] // 2, :, 0].astype(int)
        assert (red[-1] < red[0]) == mirrored                   # columns run backwards
