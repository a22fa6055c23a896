"""Every cyclegan config trains one iteration; the paper config holds the paper's settings;
G1 exports to ONNX with its spec and agrees with PyTorch; PSNR / SSIM evaluation."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fake_depth_scenes
from depth_nodes.core.model_spec import METADATA_KEY, ModelSpec
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model
from training.config import load_config
from training.evaluate_depth_synthesis import (estimator_synthesis, evaluate_synthesis,
                                               normalized_ground_truth, synthesized_image,
                                               train_mean_synthesis)
from training.metrics import DepthEvalProtocol
from training.train import run_training

torch.set_num_threads(1)
CONFIGS = sorted((Path(__file__).resolve().parents[2] / 'training' / 'configs')
                 .glob('cyclegan_*.yaml'))
# Only the input size shrinks (the networks stay as configured) so one iteration is quick.
SMOKE = ['method.options.input_height=32', 'method.options.input_width=32',
         'trainer.stage_steps={main: 1}', 'trainer.export_onnx=false', 'trainer.device=cpu',
         'data.num_workers=0', 'data.cache=false', 'data.val_split=""']


def test_configs_cover_the_paper_and_its_baselines():
    names = {path.stem for path in CONFIGS}
    assert {'cyclegan_nyu', 'cyclegan_nyu_plain', 'cyclegan_nyu_cut', 'cyclegan_synthetic_demo',
            'cyclegan_synthetic_plain_demo'} <= names


def test_nyu_config_has_the_paper_settings():
    config = load_config(Path(CONFIGS[0]).with_name('cyclegan_nyu.yaml'))
    options = config.method_config()
    assert (options.input_height, options.input_width, config.trainer.batch_size) == (256, 256, 1)
    assert options.adam_betas == (0.5, 0.999) and options.lr == 2e-4
    assert (options.generator_channels, options.generator_blocks, options.norm) == \
        (64, 9, 'instance')
    # 400 epochs of the first 1000 NYU frames at batch 1: 200 at lr, 200 decaying.
    assert config.trainer.stage_steps['main'] == 400 * 1000
    assert options.lr_constant_steps == options.lr_decay_steps == 200 * 1000
    assert config.data.dataset == 'nyu_v2' and config.data.options['val_size'] == 0
    assert options.lambda_nce_x > 0 and options.lambda_nce_y > 0 and options.lambda_cycle > 0


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_one_iteration_per_config(path, tmp_path):
    config = load_config(path, SMOKE + [f'trainer.run_dir={tmp_path}'])
    torch.manual_seed(0)
    rooms = fake_depth_scenes.FakeRooms(size=4, height=40, width=48)
    result = run_training(config, dataset=rooms, resume='never', progress=False)
    assert result.step == 1
    checkpoint = torch.load(tmp_path / 'checkpoints' / 'last.pt', weights_only=True)
    options = config.method_config()
    expected = {'generator_xy', 'discriminator_y'}
    if not options.one_sided:
        expected |= {'generator_yx', 'discriminator_x'}
    if options.uses_nce:
        expected.add('projection_x')
        if not options.one_sided and options.lambda_nce_y > 0:
            expected.add('projection_y')
    assert set(checkpoint['state']['networks']) == expected
    assert checkpoint['state']['image_history']['y'].shape[0] == min(1, options.history_size)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    from training.export import export_onnx
    from training.models.cyclegan import CycleGANConfig, CycleGANMethod
    torch.manual_seed(0)
    method = CycleGANMethod(CycleGANConfig(input_height=32, input_width=48, generator_channels=4,
                                           generator_blocks=2, discriminator_channels=4,
                                           nce_layers=('input', 'block2'), nce_patches=8,
                                           projection_dim=8))
    data = fake_depth_scenes.FakeRooms(size=4, height=32, width=48)
    np.random.seed(0)
    pairs = method.training_dataset(data, 0)
    for step in range(3):                 # trained a little: not the initial weights
        method.training_step(method.make_batch([pairs[step % len(pairs)]]), step)
    path = tmp_path_factory.mktemp('cyclegan') / 'g1.onnx'
    report = export_onnx(method, path)
    return method, path, report


def test_onnx_export_agrees_with_pytorch_and_carries_the_spec(exported):
    method, path, report = exported
    assert report['max_abs_error'] <= 1e-4 and report['program_max_abs_error'] <= 1e-4
    import onnx
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert ModelSpec.from_json(metadata[METADATA_KEY]) == method.model_spec()
    # The node's runtime on a camera image gives the method's own prediction in metres.
    sample = fake_depth_scenes.FakeRooms(size=5, height=32, width=48)[4]
    estimator = MonoDepthEstimator(open_model(str(path), 'onnxruntime'))
    depth = estimator.estimate(sample['rgb'], 'rgb8').depth
    expected = method.predict_depth(method.make_batch([sample]))[0].numpy()
    np.testing.assert_allclose(depth, expected, atol=1e-3)    # metres (range 9.5 m)


@pytest.mark.filterwarnings('ignore:divide by zero')   # PSNR of a perfect map is inf
def test_synthesis_metrics_of_a_model_by_hand(exported):
    method, path, _ = exported
    spec = method.model_spec()
    depth = np.array([[0.5, 10.0], [5.25, np.nan]], np.float32)
    np.testing.assert_allclose(normalized_ground_truth(depth, spec, 2, 2),
                               [[1.0, 0.0], [0.5, 0.0]])
    np.testing.assert_allclose(synthesized_image(np.array([[1.0, -1.0], [0.0, -3.0]]), spec),
                               [[1.0, 0.0], [0.5, 0.0]])
    data = fake_depth_scenes.FakeRooms(size=2, height=32, width=48)
    estimator = MonoDepthEstimator(open_model(str(path), 'onnxruntime'))
    results = evaluate_synthesis(estimator_synthesis(estimator), data, spec,
                                 DepthEvalProtocol(), limit=2)
    assert results['images'] == 2
    # Recompute image 0's PSNR from the raw output: 10 log10(1 / MSE).
    from depth_nodes.core.preprocess import image_to_tensor
    psnrs = []
    for sample in (data[0], data[1]):
        raw, _ = estimator.infer(image_to_tensor(sample['rgb'], 'rgb8', spec))
        error = synthesized_image(raw, spec) - normalized_ground_truth(sample['depth'], spec,
                                                                       32, 48)
        psnrs.append(10 * math.log10(1.0 / np.mean(error ** 2)))
    assert results['psnr'] == pytest.approx(np.mean(psnrs), rel=1e-6)
    assert -1.0 <= results['ssim'] <= 1.0 and results['abs_rel'] > 0
    # A constant prediction equal to each image's own depth is perfect: SSIM 1, Abs Rel 0.
    perfect = evaluate_synthesis(train_mean_synthesis(data[0]['depth'], spec), data, spec,
                                 DepthEvalProtocol(), limit=1)
    assert perfect['ssim'] == pytest.approx(1.0) and perfect['abs_rel'] == pytest.approx(0.0)
    assert perfect['psnr'] > 60


def test_evaluation_cli_writes_a_table(exported, tmp_path, capsys):
    from training.evaluate_depth_synthesis import main
    _, path, _ = exported
    out = tmp_path / 'table.json'
    status = main(['--model', str(path), '--dataset', 'synthetic', '--split', 'test',
                   '--dataset-option', 'scene=indoor', '--dataset-option', 'height=32',
                   '--dataset-option', 'width=48', '--dataset-option', 'outputs=[rgb,depth]',
                   '--dataset-option', 'size=2', '--no-progress', '--output', str(out),
                   '--baseline', 'train-mean'])
    assert status == 0
    report = json.loads(out.read_text())
    metrics = report['models'][str(path)]
    assert metrics['images'] == 2 and math.isfinite(metrics['psnr'])
    assert report['models']['train-mean']['images'] == 2
    assert 'psnr' in capsys.readouterr().out
    assert main(['--model', 'no_such_model.onnx', '--dataset', 'synthetic',
                 '--no-progress']) == 2
