"""SemiDenseMethod: training masks (density in range, scan lines), batches through the node's
pre-processing and cropped, the log L1 + gradient matching loss or the perceptual loss, the
Adam 1e-4 -> 1e-5 stages, the model spec the runtime reads, and a short run of the synthetic
demo config."""
import numpy as np
import pytest
import torch

import fake_depth_scenes
from depth_nodes.core.semidense import semidense_fill_tensor
from training.config import load_config
from training.models import METHODS
from training.models.semidense import SemiDenseConfig, SemiDenseMethod, scanline_mask
from training.networks.vgg16 import VGG16Features

torch.set_num_threads(1)
SMALL = dict(input_height=60, input_width=80, stem_channels=4, channels=8, dilations=(1, 2),
             use_intensity=False)


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


def test_scanline_masks_are_lines_of_samples():
    rng = np.random.default_rng(0)
    mask = scanline_mask((120, 160), lines=16, step=2, rng=rng)
    columns = np.nonzero(mask.any(axis=0))[0]
    assert np.all(np.diff(columns) % 2 == 0)            # a sample every 2nd column
    per_column = mask[:, columns].sum(axis=0)
    assert per_column.max() <= 16 and per_column.min() >= 8   # one per line (16 lines)
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, mask_kind='scanlines'))
    drawn = method.draw_mask(np.zeros((60, 80), np.uint8), np.ones((60, 80), bool), rng)
    assert 0 < drawn.mean() < 0.5
    # Older configs' gradient_probability p: gradient p, uniform 1 - p, no scan lines.
    assert SemiDenseConfig(**SMALL, gradient_probability=0.3).mixed_weights == (0.3, 0.7, 0.0)


def test_batch_is_the_nodes_input_cropped_and_targets_are_metres():
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, mask_kind='random'))
    samples = [fake_depth_scenes.FakeRooms(size=2, height=120, width=160)[i] for i in range(2)]
    batch = method.make_batch(samples, rng=np.random.default_rng(1))
    assert batch['input'].shape == (2, 3, 60, 80) and set(batch) == {'input', 'log_depth',
                                                                     'valid'}
    for i in range(2):
        mask = batch['input'][i, 1].numpy() > 0
        gt = np.exp(batch['log_depth'][i, 0].numpy())
        assert batch['valid'][i, 0].numpy()[mask].all()        # samples only where gt known
        sparse = np.where(mask, gt, np.nan).astype(np.float32)
        expected = semidense_fill_tensor(sparse, method.model_spec())
        assert np.allclose(batch['input'][i].numpy(), expected[0])
    cropped = SemiDenseMethod(SemiDenseConfig(**SMALL, crop_height=20, crop_width=30))
    batch = cropped.make_batch(samples, rng=np.random.default_rng(1))
    assert batch['input'].shape == (2, 3, 20, 30) and batch['valid'].shape == (2, 1, 20, 30)
    with pytest.raises(ValueError, match='crop'):
        SemiDenseConfig(**SMALL, crop_height=62)
    with pytest.raises(KeyError, match="lacks \\['depth'\\]"):
        method.make_batch([{'rgb': samples[0]['rgb'], 'name': 'no-depth'}])


def test_loss_is_named_and_stages_set_the_papers_learning_rates():
    method = METHODS['semidense'](SemiDenseConfig(**SMALL))
    assert method.model_spec().extras['loss'] == 'log_l1+gradient_matching'
    assert SemiDenseMethod(SemiDenseConfig(**SMALL, grad_weight=0.0,
                                           tv_weight=0.1)).loss_name == 'log_l1+tv'
    assert method.optimizer.param_groups[0]['lr'] == 1e-4
    method.begin_stage('low_lr')
    assert method.optimizer.param_groups[0]['lr'] == 1e-5
    torch.manual_seed(0)
    batch = method.make_batch([textured_sample(i, 60, 80) for i in range(2)],
                              rng=np.random.default_rng(0))
    before = {k: v.clone() for k, v in method.network.state_dict().items()}
    logs = method.training_step(batch, 0)
    assert set(logs) == {'log_l1_loss', 'gradient_loss', 'loss'}
    assert logs['loss'] == pytest.approx(logs['log_l1_loss'] + 0.5 * logs['gradient_loss'])
    # The head and the blocks' last convolutions start at zero, so gradient reaches the
    # layers before them one step later each; after three steps every weight has moved.
    method.training_step(batch, 1)
    method.training_step(batch, 2)
    assert all(not torch.equal(before[k], v) for k, v in method.network.state_dict().items())


def test_log_l1_by_hand():
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, grad_weight=0.0, tv_weight=0.5))
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]]).view(1, 1, 2, 2)
    target = torch.tensor([[1.5, 2.0], [0.0, 4.0]]).view(1, 1, 2, 2)
    valid = torch.tensor([[True, True], [False, True]]).view(1, 1, 2, 2)
    terms = method.loss_terms(pred, target, valid)
    assert terms['log_l1_loss'].item() == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert terms['tv_loss'].item() == pytest.approx((2.0 + 3.0) / 2 + (1.0 + 2.0) / 2)
    assert terms['loss'].item() == pytest.approx(0.5 + 0.5 * 4.0)


def test_perceptual_loss_with_torchvision_format_weights(tmp_path):
    generator = torch.Generator().manual_seed(0)
    state = {k: 0.1 * torch.randn(v.shape, generator=generator)
             for k, v in VGG16Features('relu2_2').state_dict().items()}
    torch.save(state, tmp_path / 'vgg16.pth')
    method = SemiDenseMethod(SemiDenseConfig(**SMALL, vgg16_weights=str(tmp_path / 'vgg16.pth')))
    assert method.model_spec().extras['loss'] == 'perceptual+gradient_matching'
    batch = method.make_batch([textured_sample(3, 60, 80)], rng=np.random.default_rng(0))
    logs = method.training_step(batch, 0)
    assert set(logs) == {'perceptual_loss', 'gradient_loss', 'loss'}
    assert logs['perceptual_loss'] > 0
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        SemiDenseMethod(SemiDenseConfig(**SMALL, vgg16_weights=str(tmp_path / 'missing.pth')))


def test_spec_and_prediction_in_metres():
    method = SemiDenseMethod(SemiDenseConfig(**{**SMALL, 'use_intensity': True},
                                             min_depth=0.2, max_depth=50.0))
    spec = method.model_spec()
    assert (spec.input_kind, spec.input_names, spec.input_size, spec.input_channels) == \
        ('semidense', ('semidense',), (60, 80), 4)
    assert spec.extras['channels'] == ['nearest_depth', 'mask', 'nearest_distance',
                                       'intensity']
    assert spec.extras['depth_normalization'] == 'log_geometric_mean'
    assert (spec.min_depth, spec.max_depth) == (0.2, 50.0)
    batch = method.make_batch([textured_sample(1, 60, 80)], rng=np.random.default_rng(0))
    assert batch['input'].shape == (1, 4, 60, 80)
    with torch.no_grad():
        raw = method.export_bundle().module(batch['input'])
    assert torch.allclose(method.predict_depth(batch), raw[:, 0])   # metres
    with pytest.raises(ValueError, match='even'):
        SemiDenseConfig(input_height=61)


def test_demo_config_runs_both_stages(tmp_path):
    from training.train import run_training
    config = load_config('training/configs/semidense_synthetic.yaml', [
        'method.options.input_height=24', 'method.options.input_width=32',
        'method.options.channels=4', 'method.options.stem_channels=4',
        'method.options.crop_height=16', 'method.options.crop_width=16',
        'trainer.batch_size=2', 'trainer.stage_steps.high_lr=2',
        'trainer.stage_steps.low_lr=1', 'data.val_split=', 'trainer.export_onnx=false',
        f'trainer.run_dir={tmp_path}'])
    result = run_training(config, dataset=fake_depth_scenes.FakeRooms(size=4), progress=False)
    assert result.step == 3 and result.method.stage == 'low_lr'
    assert result.method.optimizer.param_groups[0]['lr'] == 2e-4     # the config's lr_decayed
    assert (tmp_path / 'checkpoints' / 'high_lr.pt').is_file()   # export: see test_onnx_*


@pytest.mark.parametrize('config', ['semidense_nyu', 'semidense_scenenet'])
def test_paper_size_configs_train_and_export(tmp_path, config):
    from depth_nodes.runtime.model import open_model
    from training.export import export_onnx
    method_config = load_config(f'training/configs/{config}.yaml').method_config()
    assert (method_config.stem_channels, method_config.channels, method_config.dropout,
            method_config.activation) == (16, 32, 0.5, 'elu')     # the paper's network
    method = SemiDenseMethod(method_config)
    batch = method.make_batch([textured_sample(i, 240, 320) for i in range(2)],
                              rng=np.random.default_rng(0))
    assert batch['input'].shape == (2, 3, 240, 320)
    logs = method.training_step(batch, 0)
    assert np.isfinite(logs['loss']) and logs['loss'] > 0
    report = export_onnx(method, tmp_path / f'{config}.onnx', write_program=False)
    assert report['max_abs_error'] < 1e-3
    model = open_model(str(tmp_path / f'{config}.onnx'), 'onnxruntime')
    assert model.spec.input_size == (240, 320) and model.spec.input_channels == 3


def test_untrained_blend_network_is_the_blend_baseline():
    """base_fill 'blend': with its zero-initialised head the network is exactly the classical
    blend of the neighbourhood and log-linear fills (training.interpolation_baselines)."""
    from training.interpolation_baselines import blend_fill
    method = SemiDenseMethod(SemiDenseConfig(**{**SMALL, 'use_intensity': True,
                                                'base_fill': 'blend'}))
    rng = np.random.default_rng(3)
    height, width = SMALL['input_height'], SMALL['input_width']
    sparse = np.full((height, width), np.nan, np.float32)
    known = rng.random((height, width)) < 0.05
    sparse[known] = rng.uniform(1.0, 6.0, known.sum())
    gray = rng.integers(0, 255, (height, width), dtype=np.uint8)
    tensor = semidense_fill_tensor(sparse, method.model_spec(), gray)
    assert tensor.shape[1] == 6
    out = method.predict_depth({'input': torch.from_numpy(tensor)})[0].numpy()
    assert np.allclose(out, blend_fill(sparse), rtol=1e-4)
