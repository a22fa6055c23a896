"""SemiDenseMethod: training masks (density in range), batches through the node's
pre-processing, the logged L1 fallback or the perceptual loss, the Adam 1e-4 -> 1e-5 stages,
the model spec the runtime reads, and a short run of the synthetic demo config."""
import logging

import numpy as np
import pytest
import torch

import fake_depth_scenes
from depth_nodes.core.semidense import frame_depth_scale, semidense_to_tensor
from training.config import load_config
from training.models import METHODS
from training.models.semidense import SemiDenseConfig, SemiDenseMethod
from training.networks.vgg16 import VGG16Features

torch.set_num_threads(1)
SMALL = dict(input_height=60, input_width=80, stem_channels=4, channels=8, dilations=(1, 2))


def textured_sample(seed=0, height=120, width=160):
    rng = np.random.default_rng(seed)
    rgb = np.repeat(rng.integers(0, 256, (height // 4, width // 4, 1), np.uint8), 3, axis=2)
    rgb = np.kron(rgb, np.ones((4, 4, 1), np.uint8))           # 4x4 blocks: many edges
    depth = np.tile(np.linspace(1.0, 6.0, width, dtype=np.float32), (height, 1))
    return {'rgb': rgb, 'depth': depth, 'name': f'textured/{seed}'}


@pytest.mark.parametrize('kind, low, high', [('gradient', 0.10, 0.15),
                                             ('random', 0.01, 0.10)])
def test_training_mask_density_is_in_the_configured_range(kind, low, high):
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, mask_kind=kind))
    rng = np.random.default_rng(0)
    sample = textured_sample()
    gray = sample['rgb'][:, :, 0]
    known = np.ones(gray.shape, bool)
    densities = [method.draw_mask(gray, known, rng).mean() for _ in range(20)]
    assert low - 0.005 <= min(densities) and max(densities) <= high + 0.005
    assert max(densities) - min(densities) > (high - low) / 3     # drawn per sample
    holes = known.copy()
    holes[:, :80] = False                          # no ground truth on the left half
    assert not method.draw_mask(gray, holes, rng)[:, :80].any()


def test_batch_is_the_nodes_input_and_targets_are_metres():
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, mask_kind='random',
                                             scale_percentile=90.0))
    samples = [fake_depth_scenes.FakeRooms(size=2, height=120, width=160)[i] for i in range(2)]
    batch = method.make_batch(samples, rng=np.random.default_rng(1))
    assert batch['input'].shape == (2, 2, 60, 80) and batch['scale'].shape == (2,)
    for i in range(2):
        mask = batch['input'][i, 1].numpy() > 0
        gt = np.exp(batch['log_depth'][i, 0].numpy())
        assert batch['valid'][i, 0].numpy()[mask].all()        # samples only where gt known
        sparse = np.where(mask, gt, np.nan).astype(np.float32)
        scale = frame_depth_scale(sparse, 90.0)
        assert batch['scale'][i].item() == pytest.approx(scale)
        expected, _ = semidense_to_tensor(sparse, method.model_spec())
        assert np.allclose(batch['input'][i].numpy(), expected[0])
    with pytest.raises(KeyError, match="lacks \\['depth'\\]"):
        method.make_batch([{'rgb': samples[0]['rgb'], 'name': 'no-depth'}])


def test_fallback_loss_is_logged_and_stages_set_the_papers_learning_rates(caplog):
    with caplog.at_level(logging.WARNING, logger='training.models.semidense'):
        method = METHODS['semidense'](SemiDenseConfig(**SMALL))
    assert 'no VGG16 weights' in caplog.text and 'L1' in caplog.text
    assert method.model_spec().extras['loss'] == 'l1+tv (no VGG16 weights)'
    assert method.optimizer.param_groups[0]['lr'] == 1e-4
    method.begin_stage('low_lr')
    assert method.optimizer.param_groups[0]['lr'] == 1e-5
    torch.manual_seed(0)
    batch = method.make_batch([textured_sample(i, 60, 80) for i in range(2)],
                              rng=np.random.default_rng(0))
    before = {k: v.clone() for k, v in method.network.state_dict().items()}
    logs = method.training_step(batch, 0)
    assert set(logs) == {'l1_loss', 'tv_loss', 'loss'}
    assert logs['loss'] == pytest.approx(logs['l1_loss'] + 0.01 * logs['tv_loss'])
    # The blocks' last convolutions start at zero, so their first convolutions get gradient
    # from the second step on; after two steps every weight has moved.
    method.training_step(batch, 1)
    assert all(not torch.equal(before[k], v) for k, v in method.network.state_dict().items())


def test_l1_fallback_by_hand():
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, tv_weight=0.5))
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]]).view(1, 1, 2, 2)
    target = torch.tensor([[1.5, 2.0], [0.0, 4.0]]).view(1, 1, 2, 2)
    valid = torch.tensor([[True, True], [False, True]]).view(1, 1, 2, 2)
    terms = method.loss_terms(pred, target, valid)
    assert terms['l1_loss'].item() == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert terms['tv_loss'].item() == pytest.approx((2.0 + 3.0) / 2 + (1.0 + 2.0) / 2)
    assert terms['loss'].item() == pytest.approx(0.5 + 0.5 * 4.0)


def test_perceptual_loss_with_torchvision_format_weights(tmp_path):
    generator = torch.Generator().manual_seed(0)
    state = {k: 0.1 * torch.randn(v.shape, generator=generator)
             for k, v in VGG16Features('relu2_2').state_dict().items()}
    torch.save(state, tmp_path / 'vgg16.pth')
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, vgg16_weights=str(tmp_path / 'vgg16.pth')))
    assert method.model_spec().extras['loss'] == 'perceptual+tv'
    batch = method.make_batch([textured_sample(3, 60, 80)], rng=np.random.default_rng(0))
    logs = method.training_step(batch, 0)
    assert set(logs) == {'perceptual_loss', 'tv_loss', 'loss'} and logs['perceptual_loss'] > 0
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        SemiDenseMethod(SemiDenseConfig(**SMALL, vgg16_weights=str(tmp_path / 'missing.pth')))


def test_spec_and_prediction_in_metres():
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, use_intensity=True, min_depth=0.2,
                                             max_depth=50.0))
    spec = method.model_spec()
    assert (spec.input_kind, spec.input_names, spec.input_size, spec.input_channels) == \
        ('semidense', ('semidense',), (60, 80), 3)
    assert spec.extras['channels'] == ['depth', 'mask', 'intensity']
    assert spec.extras['depth_normalization'] == 'frame_percentile'
    assert (spec.min_depth, spec.max_depth) == (0.2, 50.0)
    batch = method.make_batch([textured_sample(1, 60, 80)], rng=np.random.default_rng(0))
    assert batch['input'].shape == (1, 3, 60, 80)
    with torch.no_grad():
        raw = method.export_bundle().module(batch['input'])
    assert torch.allclose(method.predict_depth(batch), raw[:, 0] * batch['scale'])
    with pytest.raises(ValueError, match='even'):
        SemiDenseConfig(input_height=61)


def test_demo_config_runs_both_stages(tmp_path):
    from training.train import run_training
    config = load_config('training/configs/semidense_synthetic.yaml', [
        'method.options.input_height=24', 'method.options.input_width=32',
        'method.options.channels=4', 'method.options.stem_channels=4',
        'trainer.batch_size=2', 'trainer.stage_steps.high_lr=2',
        'trainer.stage_steps.low_lr=1', 'data.val_split=', 'trainer.export_onnx=false',
        f'trainer.run_dir={tmp_path}'])
    result = run_training(config, dataset=fake_depth_scenes.FakeRooms(size=4), progress=False)
    assert result.step == 3 and result.method.stage == 'low_lr'
    assert result.method.optimizer.param_groups[0]['lr'] == 1e-4
    assert (tmp_path / 'checkpoints' / 'high_lr.pt').is_file()   # export: see test_onnx_*
