"""training.evaluate: checkpoint and ONNX through the nodes' runtime, the train-mean baseline."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fake_depth_scenes
from training import evaluate as evaluate_cli
from training.config import load_config
from training.evaluate import load_estimator, mean_depth_predictor, train_mean_depth
from training.train import run_training

CONFIG = Path(__file__).resolve().parents[2] / 'training' / 'configs' / 'eigen_synthetic_demo.yaml'

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp('eval') / 'run'
    config = load_config(CONFIG, [
        'method.options.width_scale=0.0625', 'method.options.fc_units=16',
        'method.options.input_height=72', 'method.options.input_width=96',
        'trainer.batch_size=2', 'trainer.stage_steps.coarse=2', 'trainer.stage_steps.fine=1',
        'trainer.device=cpu', 'trainer.threads=1', 'data.val_split=', f'trainer.run_dir={run}',
        f'data.dataset={fake_depth_scenes.NAME}', 'data.options={size: 5}',
        'data.val_options={size: 3}'])
    run_training(config, dataset=fake_depth_scenes.FakeRooms(size=4), progress=False)
    return run


def test_train_mean_depth_by_hand():
    nan = np.nan
    samples = [{'depth': np.array([[1.0, nan], [3.0, 3.0]], np.float32)},
               {'depth': np.array([[3.0, 2.0], [nan, 5.0]], np.float32)}]
    assert train_mean_depth(samples).tolist() == [[2.0, 2.0], [3.0, 4.0]]
    never_known = [{'depth': np.array([[1.0, nan]], np.float32)},
                   {'depth': np.array([[3.0, nan]], np.float32)}]
    assert train_mean_depth(never_known).tolist() == [[2.0, 2.0]]  # mean of all known
    predict = mean_depth_predictor(np.full((2, 2), 4.0, np.float32))
    assert predict({'depth': np.zeros((6, 8))}).tolist() == np.full((6, 8), 4.0).tolist()


def test_checkpoint_and_onnx_evaluate_alike_through_the_estimator(trained_run, tmp_path):
    sample = fake_depth_scenes.FakeRooms('test', size=1, height=90, width=120)[0]
    from_ckpt = load_estimator(str(trained_run / 'checkpoints' / 'last.pt'))
    from_onnx = load_estimator(str(trained_run / 'model.onnx'))
    a = from_ckpt.estimate(sample['rgb'], 'rgb8').depth
    b = from_onnx.estimate(sample['rgb'], 'rgb8').depth
    assert a.shape == b.shape == (90, 120)           # compared at the image's resolution
    assert np.allclose(a, b, rtol=1e-4)

    reports = []
    for model in ('checkpoints/last.pt', 'model.onnx'):
        out = tmp_path / (Path(model).stem + '.json')
        rc = evaluate_cli.main(['--model', str(trained_run / model), '--dataset',
                                fake_depth_scenes.NAME, '--split', 'test', '--dataset-option',
                                'size=3', '--baseline', 'train-mean', '--output', str(out),
                                '--no-progress'])
        assert rc == 0
        reports.append(json.loads(out.read_text()))
    ckpt, onnx_report = reports
    assert ckpt['metrics']['images'] == onnx_report['metrics']['images'] == 3
    for key in ('abs_rel', 'rmse', 'delta1', 'rmse_log_si'):
        assert ckpt['metrics'][key] == pytest.approx(onnx_report['metrics'][key], rel=1e-4)
    assert ckpt['baseline']['kind'] == 'train-mean'
    assert ckpt['baseline']['samples'] == 3          # the dataset options apply to train too
    assert onnx_report['protocol']['median_scaling'] is False
    assert onnx_report['engine'].startswith('onnxruntime')


def test_train_mean_baseline_is_exact_on_constant_scenes(trained_run, tmp_path, capsys):
    out = tmp_path / 'constant.json'
    rc = evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--dataset',
                            fake_depth_scenes.NAME, '--dataset-option', 'size=2',
                            '--dataset-option', 'constant_depth=2.5', '--baseline',
                            'train-mean', '--median-scaling', '--output', str(out),
                            '--no-progress'])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report['baseline']['metrics']['abs_rel'] == pytest.approx(0.0, abs=1e-6)
    assert report['baseline']['metrics']['delta1'] == 1.0
    assert report['protocol']['median_scaling'] is True
    printed = capsys.readouterr().out
    assert 'median scaling ON' in printed and 'train-mean' in printed


def test_config_gives_eval_and_baseline_data(trained_run, tmp_path):
    """--config: val_options for the evaluated split, options (training data) for the mean."""
    out = tmp_path / 'from_config.json'
    rc = evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--config',
                            str(trained_run / 'config.yaml'), '--split', 'test',
                            '--baseline', 'train-mean', '--output', str(out), '--no-progress'])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report['dataset'] == fake_depth_scenes.NAME
    assert report['metrics']['images'] == 3 and report['baseline']['samples'] == 5


def test_baseline_of_the_configs_training_data_on_another_dataset(trained_run, tmp_path):
    """Like Middlebury with a synthetic-trained model: the mean of the config's train data."""
    from training.datasets.base import DATASETS, register_dataset
    if 'test_eval_other_scenes' not in DATASETS:
        register_dataset('test_eval_other_scenes')(
            lambda split, root=None: fake_depth_scenes.FakeRooms(split, size=2))
    out = tmp_path / 'other.json'
    rc = evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--config',
                            str(trained_run / 'config.yaml'), '--dataset',
                            'test_eval_other_scenes', '--baseline', 'train-mean',
                            '--baseline-dataset', fake_depth_scenes.NAME, '--output', str(out),
                            '--no-progress'])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report['metrics']['images'] == 2
    assert report['baseline']['dataset'] == fake_depth_scenes.NAME
    assert report['baseline']['samples'] == 5          # the config's data.options size


def test_unknown_dataset_is_a_clear_error(trained_run, capsys):
    rc = evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--dataset',
                            'no_such_dataset', '--no-progress'])
    assert rc == 2
    assert "unknown dataset 'no_such_dataset'" in capsys.readouterr().err


def test_spec_overrides_reach_checkpoint_and_onnx_alike(trained_run, tmp_path):
    # A 2:1 image into the 4:3 model: letterboxed, both backends pad alike, unlike stretched.
    sample = fake_depth_scenes.FakeRooms('test', size=1, height=60, width=120)[0]
    letterbox = {'resize_mode': 'letterbox'}
    a = load_estimator(str(trained_run / 'checkpoints' / 'last.pt'), spec_overrides=letterbox)
    b = load_estimator(str(trained_run / 'model.onnx'), spec_overrides=letterbox)
    assert a.spec.resize_mode == b.spec.resize_mode == 'letterbox'
    depth_a = a.estimate(sample['rgb'], 'rgb8').depth
    depth_b = b.estimate(sample['rgb'], 'rgb8').depth
    assert depth_a.shape == (60, 120) and np.allclose(depth_a, depth_b, rtol=1e-4)
    stretched = load_estimator(str(trained_run / 'model.onnx')).estimate(sample['rgb'], 'rgb8')
    assert not np.allclose(stretched.depth, depth_b, rtol=1e-3)
    out = tmp_path / 'letterbox.json'
    assert evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--dataset',
                              fake_depth_scenes.NAME, '--split', 'test', '--dataset-option',
                              'size=2', '--spec', 'resize_mode=letterbox', '--output', str(out),
                              '--no-progress']) == 0
    assert json.loads(out.read_text())['spec']['resize_mode'] == 'letterbox'
    assert evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--dataset',
                              fake_depth_scenes.NAME, '--spec', 'resize_mode',
                              '--no-progress']) == 2


def test_post_process_flip_averages_the_mirrored_run(trained_run, tmp_path):
    sample = fake_depth_scenes.FakeRooms('test', size=1)[0]
    plain = load_estimator(str(trained_run / 'model.onnx'))
    flip = load_estimator(str(trained_run / 'model.onnx'), post_process='flip')
    image = sample['rgb']
    mirrored = plain.estimate(np.ascontiguousarray(image[:, ::-1]), 'rgb8').depth[:, ::-1]
    # The model's output is log depth: the mean of the two runs is their geometric mean.
    np.testing.assert_allclose(flip.estimate(image, 'rgb8').depth,
                               np.sqrt(plain.estimate(image, 'rgb8').depth * mirrored),
                               rtol=1e-4)
    out = tmp_path / 'flip.json'
    assert evaluate_cli.main(['--model', str(trained_run / 'model.onnx'), '--dataset',
                              fake_depth_scenes.NAME, '--split', 'test', '--dataset-option',
                              'size=2', '--post-process', 'flip', '--output', str(out),
                              '--no-progress']) == 0
    assert json.loads(out.read_text())['post_process'] == 'flip'
