"""nir_ctn (Shen et al.'s CTN on the CycleTranslation core): options, unpaired NIR / RGB
sampling with crops, batches through the nodes' pre-processing, Zhu et al.'s identity term,
one training iteration, export -> runtime parity, depth through a second model, and the
translation evaluation."""
import json

import numpy as np
import pytest
import torch
from fixtures.models import write_affine_model

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.nir_estimator import NirDepthEstimator, translated_image_to_rgb8
from training.models import METHODS
from training.models.nir_translation import (NirTranslationConfig, NirTranslationMethod,
                                             UnpairedNirRgb)

TINY = dict(input_height=16, input_width=32, crop_height=8, crop_width=16,
            generator_channels=4, generator_blocks=1, discriminator_channels=4,
            discriminator_layers=1, history_size=2)
DPN_SPEC = ModelSpec(method='dpn', input_kind='rgb', input_height=16, input_width=32,
                     output_name='disparity', output_kind='disparity_fraction', baseline=0.5,
                     focal_fraction=0.8, min_depth=0.01, max_depth=1000.0)


def tiny_method(**options):
    torch.manual_seed(0)
    return NirTranslationMethod(NirTranslationConfig(**{**TINY, **options}))


def fake_dataset(count=8, key='nir'):
    """Sample i: NIR all 10 i, RGB all (20 i, 20 i + 1, 20 i + 2); a left-to-right ramp in
    column 0 of both marks flips."""
    samples = []
    for i in range(count):
        nir = np.full((16, 32), 10 * i, np.uint8)
        rgb = np.empty((16, 32, 3), np.uint8)
        rgb[:] = (20 * i, 20 * i + 1, 20 * i + 2)
        nir[:, 0] = rgb[:, 0, 0] = 255
        samples.append({key: nir, 'rgb': rgb, 'depth': np.full((16, 32), 2.0 + i, np.float32),
                        'name': f'fake/{i}'})
    return samples


def test_registered_with_cyclegan_defaults_and_options_are_checked():
    assert METHODS['nir_ctn'] is NirTranslationMethod
    c = NirTranslationConfig()
    assert (c.x_channels, c.y_channels, c.lambda_nce_x, c.lambda_nce_y, c.lambda_cycle,
            c.lambda_identity, c.identity_inputs) == (1, 3, 0.0, 0.0, 10.0, 5.0, 'target')
    assert c.crop_size == (128, 256)
    for bad, match in [(dict(y_channels=1), 'x_channels must be 1 and y_channels 3'),
                       (dict(nir_key='thermal'), "nir_key 'thermal'"),
                       (dict(crop_height=32, crop_width=16), 'exceeds the input'),
                       (dict(crop_height=6, crop_width=16), 'crop size 16x6 must be'),
                       (dict(input_width=30), 'input size 30x16 must be')]:
        with pytest.raises(ValueError, match=match):
            NirTranslationConfig(**{**TINY, **bad})


def test_unpaired_items_come_from_disjoint_halves_and_are_cropped():
    np.random.seed(0)
    config = NirTranslationConfig(**{**TINY, 'flip': False})
    pairs = UnpairedNirRgb(fake_dataset(), seed=3, config=config)
    assert len(pairs) == 4
    x_levels, y_levels = set(), set()
    for index in range(len(pairs)):
        for _ in range(5):
            item = pairs[index]
            assert item['unpaired_nir'].shape == (8, 16)
            assert item['unpaired_rgb'].shape == (8, 16, 3)
            x_levels.add(int(item['unpaired_nir'][0, -1]) // 10)
            y_levels.add(int(item['unpaired_rgb'][0, -1, 0]) // 20)
    halves = np.random.default_rng(3).permutation(8)
    assert x_levels == set(halves[:4].tolist())        # every NIR image of the first half
    assert y_levels <= set(halves[4:].tolist())        # RGB only from the other half
    assert not x_levels & y_levels


def test_flips_and_crops_are_per_domain_and_pitts_keys_work():
    np.random.seed(1)
    config = NirTranslationConfig(**{**TINY, 'crop_height': 16, 'crop_width': 32,
                                     'nir_key': 'right_nir'})
    pairs = UnpairedNirRgb(fake_dataset(key='right_nir'), seed=0, config=config)
    flipped = {'nir': 0, 'rgb': 0}
    for _ in range(40):
        item = pairs[0]
        flipped['nir'] += int(item['unpaired_nir'][0, -1] == 255)    # marked column moved
        flipped['rgb'] += int(item['unpaired_rgb'][0, -1, 0] == 255)
    assert 5 < flipped['nir'] < 35 and 5 < flipped['rgb'] < 35


def test_batches_use_the_node_normalisation():
    method = tiny_method()
    items = [{'unpaired_nir': np.array([[0, 255] * 8] * 8, np.uint8),
              'unpaired_rgb': np.full((8, 16, 3), 255, np.uint8)}]
    batch = method.make_batch(items)
    assert batch['x'].shape == (1, 1, 8, 16) and batch['y'].shape == (1, 3, 8, 16)
    assert batch['x'][0, 0, 0, :2].tolist() == [-1.0, 1.0] and (batch['y'] == 1.0).all()
    val = method.make_batch(fake_dataset()[2:4])
    assert val['x'].shape == (2, 1, 16, 32) and val['y'].shape == (2, 3, 16, 32)
    assert val['x'][0, 0, 0, 1] == pytest.approx(20 / 127.5 - 1)          # NIR 20
    assert val['y'][1, :, 0, 1].tolist() == pytest.approx([60 / 127.5 - 1, 61 / 127.5 - 1,
                                                           62 / 127.5 - 1])
    assert torch.allclose(val['log_depth'][0], torch.log(torch.tensor(4.0)))
    with pytest.raises(KeyError, match="lacks \\['nir'\\]"):
        method.make_batch([{'rgb': np.zeros((16, 32, 3), np.uint8), 'name': 'no_nir'}])


def test_identity_term_is_zhu_et_al_form_and_no_patchnce():
    method = tiny_method()
    t = method.translation
    assert t.projection_x is None and t.projection_y is None
    torch.manual_seed(1)
    x, y = torch.rand(1, 1, 8, 16) * 2 - 1, torch.rand(1, 3, 8, 16) * 2 - 1
    _, terms, _ = t.generator_losses(x, y)
    assert set(terms) == {'gan_y', 'gan_x', 'cycle', 'identity'}
    # ||y - G1(mean_c(y))||_1 + ||x - G2(x repeated to 3 channels)||_1 (means over pixels)
    with torch.no_grad():
        expected = (y - t.generator_xy(y.mean(1, keepdim=True))).abs().mean() \
            + (x - t.generator_yx(x.expand(-1, 3, -1, -1))).abs().mean()
    assert float(terms['identity'].detach()) == pytest.approx(float(expected), rel=1e-5)


def test_one_iteration_updates_generators_and_discriminators():
    method = tiny_method()
    before = {k: [p.detach().clone() for p in v.parameters()]
              for k, v in method.networks().items()}
    pairs = UnpairedNirRgb(fake_dataset(), seed=0, config=method.config)
    logs = method.training_step(method.make_batch([pairs[0]]), step=0)
    assert {'gan_y', 'gan_x', 'cycle', 'identity', 'generator_total', 'discriminator_x',
            'discriminator_y', 'lr'} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    for name, network in method.networks().items():
        changed = any(not torch.equal(a, b) for a, b in zip(before[name],
                                                            network.parameters()))
        assert changed, name


def test_export_runs_in_the_nir_estimator_like_pytorch(tmp_path):
    from training.export import export_onnx
    method = tiny_method()
    report = export_onnx(method, tmp_path / 'ctn.onnx', write_program=False)
    spec = ModelSpec.from_json(report['spec'])
    assert (spec.input_kind, spec.input_channels, spec.output_name, spec.output_kind) == \
        ('nir', 1, 'pseudo_rgb', 'translated_image')
    dpn = write_affine_model(tmp_path / 'dpn.onnx', DPN_SPEC, weights=(0.1,) * 3, bias=0.01)
    estimator = NirDepthEstimator(open_model(str(tmp_path / 'ctn.onnx'), 'onnxruntime'),
                                  open_model(str(dpn), 'onnxruntime'))
    nir = np.random.default_rng(0).integers(0, 256, (16, 32), dtype=np.uint8)
    result = estimator.estimate(nir, 'mono8')
    x = method.make_batch([{'nir': nir, 'rgb': np.zeros((16, 32, 3), np.uint8)}])['x']
    reference = translated_image_to_rgb8(method.translate(x).numpy()[0], (-1.0, 1.0))
    difference = np.abs(result.extras['pseudo_rgb'].astype(int) - reference.astype(int))
    assert difference.max() <= 1                          # rounding of float differences
    # predict_depth: the same chain inside the training method (no camera: rig fx / W).
    with_depth = NirTranslationMethod(NirTranslationConfig(**{**TINY, 'depth_model': str(dpn)}))
    with_depth.load_state_dict(method.state_dict())
    predicted = with_depth.predict_depth({'x': x})[0].numpy()
    np.testing.assert_allclose(predicted, result.depth, rtol=1e-2)
    with pytest.raises(ValueError, match='set method.options.depth_model'):
        method.predict_depth({'x': x})


def test_evaluation_reports_translation_and_depth_against_hand_values(tmp_path):
    from training.evaluate_nir_translation import main, recovered_gap, translation_metrics
    from training.metrics import psnr

    ctn_method = tiny_method()
    from training.export import export_onnx
    export_onnx(ctn_method, tmp_path / 'ctn.onnx', write_program=False)
    dpn = write_affine_model(tmp_path / 'dpn.onnx', DPN_SPEC, weights=(0.1,) * 3, bias=0.01)
    out = tmp_path / 'metrics.json'
    assert main(['--translation', str(tmp_path / 'ctn.onnx'), '--depth-model', str(dpn),
                 '--dataset-option', 'scene=outdoor', '--dataset-option', 'height=16',
                 '--dataset-option', 'width=32', '--dataset-option', 'size=2',
                 '--output', str(out), '--no-progress']) == 0
    report = json.loads(out.read_text())
    assert set(report['depth']) == {'rgb', 'nir_translated', 'nir_gray'}
    assert report['translation']['ctn']['images'] == 2
    from training.datasets import build_dataset
    sample = build_dataset('synthetic', 'test', scene='outdoor', height=16, width=32,
                           size=2)[0]
    pseudo = np.zeros((16, 32, 3), np.uint8)
    values = translation_metrics(pseudo, sample['nir'], sample['rgb'])
    gray = np.repeat(sample['nir'][:, :, None], 3, axis=2)
    assert values['gray_nir']['psnr'] == pytest.approx(psnr(gray, sample['rgb'], 255.0))
    assert values['ctn']['psnr'] == pytest.approx(
        10 * np.log10(255.0 ** 2 / np.mean(sample['rgb'].astype(float) ** 2)))
    gap = recovered_gap({'rgb': dict.fromkeys(('abs_rel', 'delta1'), 0.1),
                         'nir_gray': {'abs_rel': 0.3, 'delta1': 0.1},
                         'nir_translated': {'abs_rel': 0.15, 'delta1': 0.2}})
    assert gap == {'abs_rel': pytest.approx(0.75)}     # delta1: no gap to recover


def write_pitts_layout(root, count=4):
    """PittsStereo-RGBNIR's layout (training/datasets/pitts_rgbnir.py), tiny images."""
    import cv2
    lines = []
    for i in range(count):
        data = root / 'data' / 'c0'
        for kind in ('RGBResize', 'NIRResize'):
            (data / kind).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / 'RGBResize' / f'k{i}_RGBResize.png'),
                    np.full((30, 40, 3), 30 * i, np.uint8))
        cv2.imwrite(str(data / 'NIRResize' / f'k{i}_NIRResize.png'),
                    np.full((30, 40), 200 - 30 * i, np.uint8))
        lines.append(f'c0 k{i} 0.5 0.5')
    (root / 'lists').mkdir()
    (root / 'lists' / 'train.txt').write_text('\n'.join(lines) + '\n')


@pytest.mark.parametrize('name', ['nir_ctn_synthetic_demo', 'nir_ctn_pitts_rgbnir'])
def test_one_iteration_per_config(name, tmp_path):
    from pathlib import Path

    from training.config import load_config
    from training.train import run_training
    path = Path(__file__).resolve().parents[2] / 'training' / 'configs' / f'{name}.yaml'
    smoke = ['method.options.input_height=32', 'method.options.input_width=64',
             'method.options.crop_height=0', 'method.options.crop_width=0',
             'trainer.stage_steps={main: 1}', 'trainer.export_onnx=false',
             'trainer.device=cpu', 'trainer.threads=1', 'data.num_workers=0',
             'data.cache=false', f'trainer.run_dir={tmp_path / "run"}']
    if name.endswith('pitts_rgbnir'):
        write_pitts_layout(tmp_path)
        smoke.append(f'data.root={tmp_path}')
    else:
        smoke.append('data.options={scene: outdoor, height: 32, width: 64, outputs: [rgb, '
                     'nir], size: 4}')
    config = load_config(path, smoke)
    torch.manual_seed(0)
    result = run_training(config, resume='never', progress=False)
    assert result.step == 1
    checkpoint = torch.load(tmp_path / 'run' / 'checkpoints' / 'last.pt', weights_only=True)
    options = config.method_config()
    expected = {'generator_xy', 'generator_yx', 'discriminator_x', 'discriminator_y'}
    assert set(checkpoint['state']['networks']) == \
        expected | ({'projection_x'} if options.lambda_nce_x > 0 else set())
    assert checkpoint['state']['image_history']['y'].shape[1:] == (3, 32, 64)   # pseudo-RGB
    assert checkpoint['state']['image_history']['x'].shape[1:] == (1, 32, 64)   # pseudo-NIR
    if name.endswith('pitts_rgbnir'):       # CycleGAN's 256 settings on the NIR right camera
        assert (options.nir_key, options.generator_channels, options.generator_blocks,
                options.discriminator_channels, config.trainer.batch_size) == \
            ('right_nir', 64, 9, 64, 1)
