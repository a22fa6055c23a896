"""The Cityscapes stereo loader on a tiny tree in the release's native format (PNG pairs,
camera.json, 16-bit disparity), and one monodepth training step on it."""
import json

import cv2
import numpy as np
import pytest

from training.datasets import build_dataset
from training.datasets.dataset_files import DatasetLayoutError

STEM = 'aachen_000000_000019'
FX, BASELINE = 2262.52, 0.209313


def write_release(root, folder='train', height=64, width=128):
    rng = np.random.default_rng(0)
    for package, suffix in (('leftImg8bit', 'leftImg8bit'), ('rightImg8bit', 'rightImg8bit')):
        path = root / package / folder / 'aachen' / f'{STEM}_{suffix}.png'
        path.parent.mkdir(parents=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    camera = root / 'camera' / folder / 'aachen' / f'{STEM}_camera.json'
    camera.parent.mkdir(parents=True)
    camera.write_text(json.dumps({'extrinsic': {'baseline': BASELINE, 'pitch': 0.038},
                                  'intrinsic': {'fx': FX, 'fy': 2265.3, 'u0': 63.5,
                                                'v0': 31.5}}))
    disparity = np.zeros((height, width), np.uint16)
    disparity[:, 10:] = 1 + 20 * 256             # 20 px; p = 0: invalid
    path = root / 'disparity' / folder / 'aachen' / f'{STEM}_disparity.png'
    path.parent.mkdir(parents=True)
    cv2.imwrite(str(path), disparity)
    return root


def test_sample_keys_values_and_bonnet_crop(tmp_path):
    root = write_release(tmp_path)
    sample = build_dataset('cityscapes', 'train', str(root))[0]
    assert sample['rgb'].shape == sample['right'].shape == (64, 128, 3)
    camera = sample['camera']
    assert (camera.fx, camera.cx, sample['baseline']) == (FX, 63.5, BASELINE)
    assert np.isnan(sample['disparity'][:, :10]).all()
    np.testing.assert_allclose(sample['disparity'][:, 10:], 20.0)
    np.testing.assert_allclose(sample['depth'][:, 10:], FX * BASELINE / 20.0, rtol=1e-6)
    assert sample['name'] == f'cityscapes/train/{STEM}'
    cropped = build_dataset('cityscapes', 'train', str(root), bottom_crop=0.25)[0]
    assert cropped['rgb'].shape == (48, 128, 3) and cropped['depth'].shape == (48, 128)
    assert cropped['camera'].height == 48 and cropped['camera'].cy == 31.5


def test_missing_folders_and_files_are_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match='leftImg8bit/val'):
        build_dataset('cityscapes', 'val', str(write_release(tmp_path)))
    (tmp_path / 'rightImg8bit' / 'train' / 'aachen' / f'{STEM}_rightImg8bit.png').unlink()
    with pytest.raises(DatasetLayoutError, match='right image'):
        build_dataset('cityscapes', 'train', str(tmp_path))[0]


def test_one_monodepth_iteration_on_cityscapes(tmp_path):
    from training.models.monodepth import MonodepthConfig, MonodepthMethod
    dataset = build_dataset('cityscapes', 'train', str(write_release(tmp_path)),
                            bottom_crop=0.25)
    method = MonodepthMethod(MonodepthConfig(input_height=64, input_width=128,
                                             width_scale=0.125))
    samples = method.training_dataset(dataset, 0)
    np.random.seed(0)
    batch = method.make_batch([samples[0], samples[0]])
    # (fx / W) B of the (uncropped-width) image
    assert batch['depth_scale'][0].item() == pytest.approx(FX / 128 * BASELINE, rel=1e-6)
    logs = method.training_step(batch, 0)
    assert np.isfinite(logs['stereo_loss']) and logs['stereo_loss'] > 0
