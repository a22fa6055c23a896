"""Augmentations: geometry kept consistent across every key of a sample, determinism."""
import dataclasses

import cv2
import numpy as np
import pytest

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.augment import (AugmentConfig, AugmentedDataset, augment, color_jitter,
                                       crop, horizontal_flip, random_crop, rotate)
from training.datasets.synthetic import SyntheticScenes

CAMERA = CameraIntrinsics(64, 48, 50.0, 50.0, 30.0, 20.0)


def _mono_sample(rng=np.random.default_rng(0)):
    depth = rng.uniform(1, 5, (48, 64)).astype(np.float32)
    depth[0, 0] = np.nan
    return {'rgb': rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
            'nir': rng.integers(0, 256, (48, 64), dtype=np.uint8), 'depth': depth,
            'semidense_mask': rng.random((48, 64)) < 0.1, 'camera': CAMERA, 'name': 'x'}


def _plane_pair(disparity_px: int = 4, baseline: float = 0.1):
    """A fronto-parallel textured plane seen by a rectified pair: right = left shifted."""
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (48, 64 + disparity_px, 3), dtype=np.uint8)
    left, right = wide[:, :64], wide[:, disparity_px:]    # right[x - d] = left[x]
    depth = np.full((48, 64), CAMERA.fx * baseline / disparity_px, np.float32)
    return {'rgb': np.ascontiguousarray(left), 'right': np.ascontiguousarray(right),
            'depth': depth, 'disparity': np.full((48, 64), disparity_px, np.float32),
            'camera': CAMERA, 'baseline': baseline, 'name': 'plane'}


def test_mono_flip_mirrors_every_image_and_the_principal_point():
    sample = _mono_sample()
    flipped = horizontal_flip(sample)
    for key in ('rgb', 'nir', 'depth', 'semidense_mask'):
        np.testing.assert_array_equal(flipped[key], sample[key][:, ::-1])
    assert flipped['camera'].cx == 64 - 1 - 30.0 and flipped['camera'].cy == 20.0
    twice = horizontal_flip(flipped)
    np.testing.assert_array_equal(twice['rgb'], sample['rgb'])
    assert twice['camera'] == CAMERA


def test_stereo_flip_swaps_views_and_keeps_the_disparity_contract():
    sample = _plane_pair(disparity_px=4)
    flipped = horizontal_flip(sample)
    np.testing.assert_array_equal(flipped['rgb'], sample['right'][:, ::-1])
    np.testing.assert_array_equal(flipped['right'], sample['rgb'][:, ::-1])
    disparity = flipped['disparity']
    # The new left is the old right view: its 4 leftmost columns (the old right's 4
    # rightmost, which the old left never saw) have no ground truth; elsewhere d = 4.
    assert np.isnan(disparity[:, :4]).all() and (disparity[:, 4:] == 4).all()
    np.testing.assert_allclose(flipped['depth'][:, 4:], sample['depth'][0, 0])
    # x_right = x_left - d holds for the swapped pair.
    np.testing.assert_array_equal(flipped['right'][:, 0:60], flipped['rgb'][:, 4:64])
    assert flipped['camera'].cx == 64 - 1 - 30.0 and flipped['baseline'] == 0.1


def test_stereo_flip_of_a_rendered_pair_still_warps():
    sample = SyntheticScenes('train', size=1, scene='indoor', height=64, width=64,
                             outputs=('rgb', 'right', 'depth', 'disparity'), noise=False)[0]
    flipped = horizontal_flip(sample)
    d = flipped['disparity']
    known = np.isfinite(d)
    assert known.mean() > 0.8
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float32)
    warped = cv2.remap(flipped['right'], cols - np.where(known, d, 0), rows, cv2.INTER_LINEAR)
    error = np.abs(warped.astype(np.float32) - flipped['rgb']).mean(axis=2)[known]
    assert np.median(error) < 3.0
    np.testing.assert_allclose(d[known], flipped['camera'].fx * flipped['baseline']
                               / flipped['depth'][known], rtol=1e-5)


def test_flip_refuses_what_it_cannot_keep_consistent():
    with pytest.raises(ValueError, match="'nir'"):
        horizontal_flip({**_plane_pair(), 'nir': np.zeros((48, 64), np.uint8)})
    with pytest.raises(ValueError, match='NIR on the left'):
        horizontal_flip({'rgb': np.zeros((4, 4, 3), np.uint8),
                         'right_nir': np.zeros((4, 4), np.uint8)})
    with pytest.raises(ValueError, match='pose'):
        horizontal_flip({**_mono_sample(), 'pose': np.eye(4)})


def test_crop_moves_the_principal_point_not_the_disparity():
    sample = _plane_pair()
    out = crop(sample, top=5, left=10, height=30, width=40)
    np.testing.assert_array_equal(out['rgb'], sample['rgb'][5:35, 10:50])
    np.testing.assert_array_equal(out['right'], sample['right'][5:35, 10:50])
    assert (out['camera'].cx, out['camera'].cy) == (20.0, 15.0)
    assert (out['camera'].width, out['camera'].height) == (40, 30)
    assert (out['disparity'] == 4).all()
    with pytest.raises(ValueError, match='does not fit'):
        crop(sample, 40, 0, 30, 40)
    a = random_crop(sample, np.random.default_rng(3), 16, 16)
    b = random_crop(sample, np.random.default_rng(3), 16, 16)
    np.testing.assert_array_equal(a['rgb'], b['rgb'])
    assert a['camera'] == b['camera']


def test_rotation_is_a_roll_about_the_principal_point():
    camera = CameraIntrinsics(33, 33, 40.0, 40.0, 16.0, 16.0)
    depth = np.full((33, 33), 2.0, np.float32)
    depth[16, 26] = 7.0                       # 10 px right of the principal point
    rgb = np.zeros((33, 33, 3), np.uint8)
    rgb[16, 26] = 255
    mask = np.zeros((33, 33), bool)
    mask[16, 26] = True
    out = rotate({'rgb': rgb, 'depth': depth, 'semidense_mask': mask, 'camera': camera}, 90.0)
    # Counter-clockwise by 90 degrees in the image (y down): right of centre -> above it.
    assert out['depth'][6, 16] == 7.0 and out['rgb'][6, 16, 0] == 255
    assert out['semidense_mask'][6, 16]
    assert out['semidense_mask'].sum() == 1
    values = set(np.unique(out['depth'][np.isfinite(out['depth'])]).tolist())
    assert values == {2.0, 7.0}               # nearest neighbour: no invented depths
    small = rotate({'depth': np.ones((32, 32), np.float32)}, 10.0)
    assert np.isnan(small['depth'][0, 0]) and small['depth'][16, 16] == 1.0
    with pytest.raises(ValueError, match='rectification'):
        rotate(_plane_pair(), 3.0)


def test_color_jitter_brightness_matches_a_hand_computation():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    sample = {'rgb': rgb, 'right': rgb.copy()}
    out = color_jitter(sample, np.random.default_rng(42), brightness=0.3, contrast=0.0,
                       saturation=0.0, gamma=(1.0, 1.0))
    draws = np.random.default_rng(42)
    draws.uniform(1.0, 1.0)                   # gamma is drawn first
    factor = draws.uniform(0.7, 1.3)
    assert out['rgb'][0, 0, 0] == int(np.clip(100 * factor + 0.5, 0, 255))
    np.testing.assert_array_equal(out['rgb'], out['right'])    # one draw for both views


def test_pipeline_is_deterministic_per_seed_epoch_and_index():
    dataset = [_mono_sample(np.random.default_rng(i)) for i in range(3)]
    config = AugmentConfig(flip_probability=0.5, max_rotation_degrees=5.0, crop=(32, 48))
    a, b = AugmentedDataset(dataset, config, seed=7), AugmentedDataset(dataset, config, seed=7)
    for i in range(3):
        np.testing.assert_array_equal(a[i]['rgb'], b[i]['rgb'])
        assert a[i]['rgb'].shape == (32, 48, 3) and a[i]['camera'].width == 48
    first = a[1]['rgb']
    a.set_epoch(1)
    assert not np.array_equal(first, a[1]['rgb'])
    plain = augment(dataset[0], np.random.default_rng(0),
                    AugmentConfig(flip_probability=0, brightness=0, contrast=0, saturation=0,
                                  gamma=(1.0, 1.0)))
    np.testing.assert_array_equal(plain['rgb'], dataset[0]['rgb'])


def test_aspect_crop_takes_the_largest_window_of_the_drawn_shape():
    from training.datasets.augment import random_aspect_crop
    sample = _mono_sample()                                         # 64x48 (4:3)
    wide = random_aspect_crop(sample, np.random.default_rng(0), (2.0, 2.0))
    assert wide['rgb'].shape[:2] == (32, 64) and wide['depth'].shape == (32, 64)
    top = int(round(CAMERA.cy - wide['camera'].cy))                 # the window's first row
    np.testing.assert_array_equal(wide['rgb'], sample['rgb'][top:top + 32])
    np.testing.assert_array_equal(wide['depth'][1:], sample['depth'][top + 1:top + 32])
    assert wide['camera'].cx == CAMERA.cx and (wide['camera'].width, wide['camera'].height) \
        == (64, 32)
    tall = random_aspect_crop(sample, np.random.default_rng(0), (1.0, 1.0))
    assert tall['rgb'].shape[:2] == (48, 48)
    config = AugmentConfig(flip_probability=0, brightness=0, contrast=0, saturation=0,
                           gamma=(1, 1), aspect_crop=(1.5, 1.5), aspect_crop_probability=1.0)
    assert augment(sample, np.random.default_rng(1), config)['rgb'].shape[:2] == (43, 64)
    never = dataclasses.replace(config, aspect_crop_probability=0.0)
    assert augment(sample, np.random.default_rng(1), never)['rgb'].shape[:2] == (48, 64)
    with pytest.raises(ValueError, match='aspect_crop must be'):
        AugmentConfig(aspect_crop=(2.0, 1.0))
    with pytest.raises(ValueError, match='aspect_crop_probability'):
        AugmentConfig(aspect_crop_probability=1.5)
