"""The monodepth (DPN) training method: batches, augmentation that swaps the views, a
training step that learns, depth from disparity, and the export the nodes run."""
import math

import numpy as np
import pytest
import torch

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model
from training.datasets import build_dataset
from training.models import METHODS
from training.models.monodepth import MonodepthConfig, MonodepthMethod, StereoTrainingSamples

TINY = dict(input_height=64, input_width=128, width_scale=0.125)


@pytest.fixture(scope='module')
def stereo_samples():
    dataset = build_dataset('synthetic', 'train', scene='outdoor', height=64, width=128,
                            outputs=('rgb', 'right', 'disparity', 'depth'), size=4)
    return [dataset[i] for i in range(4)]


def test_registered_with_paper_defaults_where_they_matter():
    config = MonodepthConfig()
    assert METHODS['monodepth'] is MonodepthMethod
    assert (config.ssim_alpha, config.learning_rate, config.smoothness_weight,
            config.lr_consistency_weight) == (0.85, 5e-4, 0.1, 1.0)
    with pytest.raises(ValueError, match='multiples of 32'):
        MonodepthMethod(MonodepthConfig(input_height=100))


def test_make_batch_holds_both_views_depth_scale_and_ground_truth(stereo_samples):
    method = MonodepthMethod(MonodepthConfig(**TINY))
    batch = method.make_batch(stereo_samples[:2])
    assert batch['image'].shape == batch['right'].shape == (2, 3, 64, 128)
    camera = stereo_samples[0]['camera']
    # (fx / W) B: 70 deg horizontal field of view, 0.54 m baseline
    assert batch['depth_scale'][0].item() == pytest.approx(camera.fx / 128 * 0.54)
    assert camera.fx / 128 == pytest.approx(0.5 / math.tan(math.radians(35)))
    assert batch['valid'].shape == (2, 1, 64, 128) and batch['valid'].any()
    unit = method.unit_images(batch['image'])
    expected = torch.from_numpy(stereo_samples[0]['rgb']).permute(2, 0, 1) / 255.0
    torch.testing.assert_close(unit[0], expected, atol=1e-5, rtol=0)


def test_augmentation_flip_swaps_and_mirrors_the_views(stereo_samples):
    config = MonodepthConfig(**TINY, flip_probability=1.0, color_probability=0.0)
    np.random.seed(0)
    sample = StereoTrainingSamples(stereo_samples, config)[1]
    original = stereo_samples[1]
    np.testing.assert_array_equal(sample['rgb'], original['right'][:, ::-1])
    np.testing.assert_array_equal(sample['right'], original['rgb'][:, ::-1])
    assert sample['camera'].cx == pytest.approx(127 - original['camera'].cx)
    no_flip = MonodepthConfig(**TINY, flip_probability=0.0, color_probability=0.0)
    np.testing.assert_array_equal(StereoTrainingSamples(stereo_samples, no_flip)[1]['rgb'],
                                  original['rgb'])


def test_mono_samples_are_refused_naming_the_sample():
    with pytest.raises(KeyError, match='right'):
        StereoTrainingSamples([{'rgb': np.zeros((64, 128, 3), np.uint8), 'name': 'mono/1'}],
                              MonodepthConfig(**TINY))[0]


def test_training_steps_lower_the_loss_on_a_batch(stereo_samples):
    torch.manual_seed(0)
    method = MonodepthMethod(MonodepthConfig(**TINY, learning_rate=1e-3))
    batch = method.make_batch(stereo_samples)
    first = method.training_step(batch, 0)
    assert set(first) == {'stereo_loss', 'appearance_loss', 'smoothness_loss',
                          'lr_consistency_loss', 'mean_disparity'}
    assert first['mean_disparity'] == pytest.approx(0.01, abs=0.002)  # initial_disparity
    for step in range(1, 12):
        last = method.training_step(batch, step)
    assert last['stereo_loss'] < 0.85 * first['stereo_loss']


def test_learning_rate_halves_after_the_configured_steps():
    method = MonodepthMethod(MonodepthConfig(**TINY, lr_halving_steps=(10, 20)))
    assert [method.learning_rate(s) for s in (0, 9, 10, 25)] == [5e-4, 5e-4, 2.5e-4, 1.25e-4]


def test_depth_is_focal_fraction_times_baseline_over_disparity(stereo_samples):
    method = MonodepthMethod(MonodepthConfig(**TINY))
    batch = method.make_batch(stereo_samples[:1])
    disparity = method.predict_disparity(batch['image'])
    depth = method.predict_depth(batch)
    torch.testing.assert_close(depth, batch['depth_scale'].view(-1, 1, 1) / disparity)


def test_spec_and_exported_model_give_the_same_metres(stereo_samples, tmp_path):
    from training.export import export_onnx
    torch.manual_seed(3)
    method = MonodepthMethod(MonodepthConfig(**TINY, rig_baseline=0.5, rig_focal_fraction=0.7,
                                             min_depth=0.01, max_depth=1000.0))
    spec = method.model_spec()
    assert (spec.output_kind, spec.baseline, spec.focal_fraction) == \
        ('disparity_fraction', 0.5, 0.7)
    report = export_onnx(method, tmp_path / 'dpn.onnx', write_program=False)
    assert report['max_abs_error'] < 1e-4
    image = stereo_samples[0]['rgb']
    estimator = MonoDepthEstimator(open_model(str(tmp_path / 'dpn.onnx'), 'onnxruntime'))
    batch = method.make_batch([{'rgb': image}])
    expected = 0.7 * 0.5 / method.predict_disparity(batch['image'])[0].numpy()
    np.testing.assert_allclose(estimator.estimate(image, 'rgb8').depth, expected, rtol=1e-4)
    # With camera_info the node uses the camera's fx / W instead of the spec's.
    camera = CameraIntrinsics(128, 64, fx=64.0, fy=64.0, cx=63.5, cy=31.5)
    np.testing.assert_allclose(estimator.estimate(image, 'rgb8', camera).depth,
                               expected * (0.5 / 0.7), rtol=1e-4)


@pytest.mark.parametrize('name', ['synthetic_demo', 'synthetic', 'kitti', 'cityscapes'])
def test_configs_load_with_the_paper_loss_and_a_valid_network(name):
    from pathlib import Path

    from training.config import load_config
    path = Path(__file__).resolve().parents[2] / 'training' / 'configs' / f'monodepth_{name}.yaml'
    config = load_config(path)
    options = config.method_config()
    assert config.method.name == 'monodepth' and options.ssim_alpha == 0.85
    assert options.architecture.output_sizes()[0] == (options.input_height, options.input_width)
    if name != 'synthetic_demo':        # paper size: 512x256, the full-width network
        assert (options.input_width, options.input_height, options.width_scale) == \
            (512, 256, 1.0)
        assert options.learning_rate == 5e-4 and config.trainer.batch_size == 8
