"""Pix2PixMethod: one iteration against the paper's objective recomputed by hand, the depth
encoding shared with the node, batches, spec, configs through the trainer and ONNX parity."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import fake_depth_scenes
from depth_nodes.core.postprocess import output_to_metres
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model
from training import train as train_cli
from training.export import export_onnx
from training.models import METHODS
from training.models.pix2pix import (Pix2PixConfig, Pix2PixMethod, depth_to_normalized,
                                     normalized_to_depth)

torch.set_num_threads(1)
CONFIG_DIR = Path(__file__).resolve().parents[2] / 'training' / 'configs'
SMALL = dict(input_height=32, input_width=48, num_downs=4, generator_channels=4,
             discriminator_channels=4, min_depth=0.5, max_depth=8.0)


def fake_samples(count, height=60, width=80, hole=False):
    rooms = fake_depth_scenes.FakeRooms(size=count, height=height, width=width)
    samples = [rooms[i] for i in range(count)]
    for sample in samples:
        if hole:                                      # a sensor hole: no ground truth
            sample['depth'][:, :width // 4] = np.nan
    return samples


def test_one_iteration_steps_d_then_g_on_the_papers_objective():
    # No normalisation and no dropout: the networks are plain functions, so the step can be
    # recomputed from copies taken before it.
    torch.manual_seed(0)
    method = METHODS['pix2pix'](Pix2PixConfig(**SMALL, norm='none', dropout=0.0))
    batch = method.make_batch(fake_samples(2, hole=True))
    before = copy.deepcopy(method)
    logs = method.training_step(batch, 0)

    image, target, valid = batch['image'], batch['normalized_depth'], batch['valid']
    assert not valid[..., :12].any() and valid[..., 12:].all()     # the hole is masked
    fake = before.generator(image)
    real = torch.where(valid, target, fake.detach())
    d_real = before.discriminator(torch.cat([image, real], 1))
    d_fake = before.discriminator(torch.cat([image, fake.detach()], 1))
    # D: [-log D(x, y) - log(1 - D(x, G(x)))] / 2, D = sigmoid(logit)
    loss_d = 0.5 * (F.softplus(-d_real).mean() + F.softplus(d_fake).mean())
    assert logs['discriminator_loss'] == pytest.approx(loss_d.item(), rel=1e-5)
    # D's gradient is that of its own loss only (G's step must not add to it).
    expected = torch.autograd.grad(loss_d, list(before.discriminator.parameters()))
    for param, grad in zip(method.discriminator.parameters(), expected):
        torch.testing.assert_close(param.grad, grad, rtol=1e-4, atol=1e-7)
    # G: -log D'(x, G(x)) + 100 * mean |y - G(x)| over valid pixels, D' = D after its step.
    loss_gan = F.softplus(-method.discriminator(torch.cat([image, fake], 1))).mean()
    loss_l1 = (fake - target).abs()[valid].mean()
    assert logs['generator_gan_loss'] == pytest.approx(loss_gan.item(), rel=1e-5)
    assert logs['generator_l1_loss'] == pytest.approx(loss_l1.item(), rel=1e-5)
    expected = torch.autograd.grad(loss_gan + 100.0 * loss_l1,
                                   list(before.generator.parameters()))
    for param, grad in zip(method.generator.parameters(), expected):
        torch.testing.assert_close(param.grad, grad, rtol=1e-4, atol=1e-6)
    # Adam's first step is lr * g / (|g| + eps): every weight with a clear gradient moves by
    # lr = 2e-4, against its gradient.
    for new, old, grad in zip(method.generator.parameters(), before.generator.parameters(),
                              expected):
        clear = grad.abs() > 1e-5
        step = (new - old).detach()[clear]
        assert torch.allclose(step, -2e-4 * grad[clear].sign(), rtol=1e-2)
    assert all(p.requires_grad for p in method.discriminator.parameters())


def test_default_method_trains_one_iteration_with_batchnorm_and_dropout():
    torch.manual_seed(0)
    method = Pix2PixMethod(Pix2PixConfig(**SMALL))
    state = {k: v.clone() for k, v in method.generator.state_dict().items()}
    logs = method.training_step(method.make_batch(fake_samples(2)), 0)
    assert all(np.isfinite(v) for v in logs.values())
    assert 0 < logs['discriminator_real'] < 1 and 0 < logs['discriminator_fake'] < 1
    changed = {k for k, v in method.generator.state_dict().items()
               if not torch.equal(state[k], v)}
    assert {k for k in state if k.endswith('weight')} <= changed


def test_depth_encoding_is_the_nodes_normalized_near_bright_output():
    method = Pix2PixMethod(Pix2PixConfig(**SMALL))
    spec = method.model_spec()
    assert (spec.output_kind, spec.output_range, spec.near_is_bright) == \
        ('normalized_depth', (-1.0, 1.0), True)
    depth = torch.tensor([0.5, 4.25, 8.0, 2.0])
    normalized = depth_to_normalized(depth, 0.5, 8.0)
    # min -> +1 (bright), max -> -1, the middle -> 0; 2 m: 1 - 2 * 1.5 / 7.5 = 0.6
    assert normalized.tolist() == pytest.approx([1.0, 0.0, -1.0, 0.6])
    metres = output_to_metres(normalized.numpy().reshape(2, 2), spec)
    np.testing.assert_allclose(metres.ravel(), depth.numpy(), rtol=1e-6)
    assert torch.allclose(normalized_to_depth(normalized, 0.5, 8.0), depth)


def test_make_batch_uses_the_nodes_preprocessing_and_masks_missing_depth():
    method = Pix2PixMethod(Pix2PixConfig(**SMALL))
    sample = fake_samples(1, height=64, width=96, hole=True)[0]   # columns 0-23 unknown
    sample['depth'][40:, :] = 20.0                       # beyond max_depth: masked
    batch = method.make_batch([sample])
    expected = image_to_tensor(sample['rgb'], 'rgb8', method.model_spec())
    assert torch.equal(batch['image'], torch.from_numpy(expected))
    valid, target = batch['valid'], batch['normalized_depth']
    assert target.shape == valid.shape == (1, 1, 32, 48)
    assert not valid[0, 0, :, :12].any() and not valid[0, 0, 20:].any()
    assert valid[0, 0, :20, 12:].all()
    assert torch.isfinite(target).all() and target[valid].abs().max() <= 1.0
    # Valid pixels: the normalised form of the (2x2-averaged) ground truth.
    metres = sample['depth'][2:4, 40:42].mean()
    assert target[0, 0, 1, 20].item() == pytest.approx(
        depth_to_normalized(torch.tensor(metres), 0.5, 8.0).item(), rel=1e-5)
    with pytest.raises(KeyError, match="lacks \\['depth'\\]"):
        method.make_batch([{'rgb': sample['rgb'], 'name': 'no-depth'}])


def test_linear_lr_decay_is_the_papers_code_schedule():
    torch.manual_seed(0)
    method = Pix2PixMethod(Pix2PixConfig(**SMALL, lr_constant_steps=2, lr_decay_steps=3))
    batch = method.make_batch(fake_samples(2))
    # lr x (1 - (step - 2 + 1) / 4) after the 2 constant steps: 1, 1, 3/4, 1/2, 1/4, 0, 0
    lrs = [method.training_step(batch, step)['lr'] for step in range(7)]
    assert lrs == pytest.approx([2e-4, 2e-4, 1.5e-4, 1e-4, 0.5e-4, 0.0, 0.0])
    assert all(group['lr'] == 0.0 for optimizer in method.optimizers().values()
               for group in optimizer.param_groups)
    constant = Pix2PixMethod(Pix2PixConfig(**SMALL))        # the default: no decay
    assert constant.training_step(batch, 10 ** 6)['lr'] == 2e-4


def test_config_checks_name_the_problem():
    with pytest.raises(ValueError, match='multiple of 2\\*\\*num_downs = 16'):
        Pix2PixConfig(input_height=40, input_width=48, num_downs=4)
    with pytest.raises(ValueError, match='min_depth'):
        Pix2PixConfig(min_depth=5.0, max_depth=1.0)
    with pytest.raises(ValueError, match='lr_decay_steps must be >= 0'):
        Pix2PixConfig(lr_decay_steps=-1)
    with pytest.raises(ValueError, match="resize_mode 'crop'"):
        Pix2PixConfig(resize_mode='crop')


def test_letterbox_goes_into_the_spec_and_pads_images_and_targets_alike():
    method = Pix2PixMethod(Pix2PixConfig(**SMALL, resize_mode='letterbox'))
    assert method.model_spec().resize_mode == 'letterbox'
    assert Pix2PixMethod(Pix2PixConfig(**SMALL)).model_spec().resize_mode == 'stretch'
    # 60x80 (4:3) into 32x48 (3:2): x 32/60 -> 32x43 at column 2, columns 0-1 and 45-47 pad.
    samples = fake_samples(2)
    batch = method.make_batch(samples)
    image, valid = batch['image'], batch['valid']
    assert image.shape == (2, 3, 32, 48) and valid.shape == (2, 1, 32, 48)
    assert not valid[..., :2].any() and not valid[..., 45:].any()
    assert torch.equal(image[..., 0], image[..., 2])
    assert torch.equal(image[..., 47], image[..., 44])
    from training.models.base import resize_depth
    inside = resize_depth(samples[0]['depth'], 32, 43)
    np.testing.assert_allclose(batch['log_depth'][0, 0, :, 2:45].numpy(),
                               np.where(valid[0, 0, :, 2:45].numpy(), np.log(inside), 0),
                               rtol=1e-6)
    assert valid[..., 2:45].float().mean() > 0.9


def test_onnx_export_matches_pytorch_and_the_node_runtime(tmp_path):
    torch.manual_seed(0)
    method = Pix2PixMethod(Pix2PixConfig(**SMALL))
    method.training_step(method.make_batch(fake_samples(2)), 0)   # non-trivial BN statistics
    report = export_onnx(method, tmp_path / 'p2p.onnx', write_program=False)
    assert report['max_abs_error'] < 1e-5
    sample = fake_samples(1, height=64, width=96)[0]
    estimator = MonoDepthEstimator(open_model(str(tmp_path / 'p2p.onnx'), 'onnxruntime'),
                                   output_resolution='model')
    depth = estimator.estimate(sample['rgb'], 'rgb8').depth
    expected = method.predict_depth(method.make_batch([sample]))[0].numpy()
    assert depth.shape == (32, 48)
    np.testing.assert_allclose(depth, expected, atol=1e-4)
    assert 0.5 <= np.nanmin(depth) and np.nanmax(depth) <= 8.0


@pytest.mark.parametrize('name', ['pix2pix_nyu', 'pix2pix_diml', 'pix2pix_synthetic_demo',
                                  'pix2pix_synthetic_variety_demo'])
def test_one_iteration_per_config_through_the_trainer(name, tmp_path):
    run = tmp_path / 'run'
    rc = train_cli.main([
        '--config', str(CONFIG_DIR / f'{name}.yaml'), '--device', 'cpu', '--no-progress',
        'method.options.generator_channels=2', 'method.options.discriminator_channels=2',
        'trainer.batch_size=2', 'trainer.stage_steps.main=1', f'trainer.run_dir={run}',
        f'data.dataset={fake_depth_scenes.NAME}', 'data.options={height: 60, width: 80}',
        'data.val_split=', 'data.num_workers=0', 'data.cache=false', 'data.root=null',
        'trainer.threads=1', 'trainer.export_onnx=false'])
    assert rc == 0
    assert (run / 'checkpoints' / 'last.pt').is_file()


def test_export_of_a_checkpoint_takes_method_option_overrides(tmp_path, capsys):
    import json

    import onnx

    from training import export as export_cli
    run = tmp_path / 'run'
    assert train_cli.main([
        '--config', str(CONFIG_DIR / 'pix2pix_nyu.yaml'), '--device', 'cpu', '--no-progress',
        *(f'method.options.{k}={v}' for k, v in SMALL.items()),
        'trainer.batch_size=2', 'trainer.stage_steps.main=1', f'trainer.run_dir={run}',
        f'data.dataset={fake_depth_scenes.NAME}', 'data.options={height: 60, width: 80}',
        'data.val_split=', 'data.num_workers=0', 'data.cache=false', 'data.root=null',
        'trainer.threads=1', 'trainer.export_onnx=false']) == 0
    checkpoint, output = str(run / 'checkpoints' / 'last.pt'), tmp_path / 'p2p.onnx'
    assert export_cli.main(['--checkpoint', checkpoint, '--output', str(output),
                            'method.options.resize_mode=letterbox']) == 0
    props = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert json.loads(props['depth_nodes.model_spec'])['resize_mode'] == 'letterbox'
    assert json.loads(props['depth_nodes.training'])['overrides'] == [
        'method.options.resize_mode=letterbox']
    assert open_model(str(output), 'onnxruntime').spec.resize_mode == 'letterbox'
    capsys.readouterr()
    assert export_cli.main(['--checkpoint', checkpoint, '--output', str(output),
                            'trainer.seed=3']) == 2
    assert 'method options only' in capsys.readouterr().err
