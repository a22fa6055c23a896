"""EigenMethod: coarse first, then fine with the coarse stack fixed; batches and spec."""
import math

import numpy as np
import pytest
import torch

import fake_depth_scenes
from depth_nodes.core.preprocess import image_to_tensor
from training.models import METHODS
from training.models.base import depth_targets, resize_depth
from training.models.eigen import EigenConfig, EigenMethod

torch.set_num_threads(1)
SMALL = dict(input_height=72, input_width=96, width_scale=0.125, fc_units=16)


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_stages_train_one_stack_and_freeze_the_other():
    torch.manual_seed(0)
    method = METHODS['eigen'](EigenConfig(**SMALL))
    samples = [fake_depth_scenes.FakeRooms(size=4)[i] for i in range(4)]
    batch = method.make_batch(samples)

    assert method.stage == 'coarse'
    coarse, fine = _snapshot(method.coarse), _snapshot(method.fine)
    logs = method.training_step(batch, 0)
    assert math.isfinite(logs['scale_invariant_loss'])
    assert _changed(coarse, method.coarse) == set(coarse)   # every coarse weight moved
    assert not _changed(fine, method.fine)

    method.begin_stage('fine')
    assert not method.coarse.training and method.fine.training   # no dropout in coarse
    coarse, fine = _snapshot(method.coarse), _snapshot(method.fine)
    method.training_step(batch, 1)
    assert not _changed(coarse, method.coarse)               # "we do not backpropagate"
    assert _changed(fine, method.fine) == set(fine)
    assert all(p.grad is None for p in method.coarse.parameters())


def test_make_batch_uses_the_nodes_preprocessing_and_masks_missing_depth():
    method = EigenMethod(EigenConfig(**SMALL))
    sample = fake_depth_scenes.FakeRooms(size=1, height=72, width=96)[0]
    batch = method.make_batch([sample])
    expected = image_to_tensor(sample['rgb'], 'rgb8', method.model_spec())
    assert torch.equal(batch['image'], torch.from_numpy(expected))
    h, w = method.output_size
    assert batch['log_depth'].shape == batch['valid'].shape == (1, 1, h, w)
    # The sample's top row has no depth: the top output row (covering image rows 0-4.5)
    # still has known pixels, so only all-NaN areas are masked; no NaN reaches the loss.
    assert batch['valid'].all() and torch.isfinite(batch['log_depth']).all()
    with pytest.raises(KeyError, match="lacks \\['depth'\\]"):
        method.make_batch([{'rgb': sample['rgb'], 'name': 'no-depth'}])


def test_resize_depth_averages_known_pixels_only():
    depth = np.array([[1.0, 3.0, np.nan, np.nan],
                      [1.0, 3.0, np.nan, 8.0]], dtype=np.float32)
    out = resize_depth(depth, 1, 2)
    assert out[0, 0] == pytest.approx(2.0)      # mean of 1, 3, 1, 3
    assert out[0, 1] == pytest.approx(8.0)      # the one known pixel, not 8 / 4
    assert np.isnan(resize_depth(np.full((4, 4), np.nan, np.float32), 2, 2)).all()
    log_depth, valid = depth_targets([depth], 1, 2, min_depth=0.1, max_depth=5.0)
    assert valid.tolist() == [[[[True, False]]]]           # 8 m is beyond max_depth
    assert log_depth[0, 0, 0, 0].item() == pytest.approx(math.log(2.0))
    assert log_depth[0, 0, 0, 1].item() == 0.0


def test_spec_describes_the_exported_log_depth_output():
    method = EigenMethod(EigenConfig(**SMALL, min_depth=0.5, max_depth=10.0))
    spec = method.model_spec()
    assert (spec.input_kind, spec.input_names, spec.input_size) == ('rgb', ('image',), (72, 96))
    assert (spec.output_kind, spec.output_name) == ('log_depth', 'log_depth')
    assert (spec.min_depth, spec.max_depth) == (0.5, 10.0)
    assert spec.extras['output_stage'] == 'coarse'
    method.begin_stage('fine')
    assert method.model_spec().extras['output_stage'] == 'fine'
    # predict_depth = exp of the exported network's output, in metres.
    image = torch.rand(2, 3, 72, 96)
    with torch.no_grad():
        log_depth = method.export_bundle().module(image)
    assert torch.allclose(method.predict_depth({'image': image}), log_depth.exp()[:, 0])


def test_initial_prediction_is_the_configured_depth():
    method = EigenMethod(EigenConfig(**SMALL, initial_depth=3.0))
    with torch.no_grad():
        method.coarse.coarse7.weight.zero_()
    depth = method.predict_depth({'image': torch.rand(1, 3, 72, 96)})
    assert torch.allclose(depth, torch.full_like(depth, 3.0))


def test_letterbox_goes_into_the_spec_and_masks_the_padding_at_the_output_size():
    method = EigenMethod(EigenConfig(**SMALL, resize_mode='letterbox'))
    assert method.model_spec().resize_mode == 'letterbox'
    assert EigenMethod(EigenConfig(**SMALL)).model_spec().resize_mode == 'stretch'
    with pytest.raises(ValueError, match="resize_mode 'crop'"):
        EigenConfig(**SMALL, resize_mode='crop')
    # 48x96 (2:1) into 72x96 (4:3): the image fills rows 12-59, rows 0-11 and 60-71 repeat
    # its edge rows.
    sample = fake_depth_scenes.FakeRooms(size=1, height=48, width=96)[0]
    sample['depth'][:] = np.linspace(1.0, 5.0, 96, dtype=np.float32)[None, :]
    batch = method.make_batch([sample])
    image = batch['image']
    assert torch.equal(image[:, :, 0], image[:, :, 12])
    assert torch.equal(image[:, :, 71], image[:, :, 59])
    # Targets at the output size: the letterboxed depth area-averaged, unknown in the padding.
    h, w = method.output_size
    rows = torch.nonzero(batch['valid'][0, 0].any(dim=1)).flatten()
    assert rows.min() / h == pytest.approx(12 / 72, abs=1 / h)
    assert (rows.max() + 1) / h == pytest.approx(60 / 72, abs=1 / h)
    inside = batch['valid'][0, 0, rows.min() + 1:rows.max()]
    assert inside.all()
    # Each column keeps its depth (constant down a column): the stretch is horizontal only.
    expected = np.log(resize_depth(sample['depth'], 1, w))[0]
    np.testing.assert_allclose(batch['log_depth'][0, 0, rows.min() + 1].numpy(), expected,
                               rtol=1e-5)
