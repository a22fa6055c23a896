"""Classical densification baselines, the paper's metrics and `training.evaluate` on a
semi-dense model: values by hand, and the CLI's numbers equal to direct computation."""
import json
import math

import numpy as np
import pytest
from fixtures.models import write_affine_model

import fake_depth_scenes
from depth_nodes.core.model_spec import ModelSpec
from training import evaluate as evaluate_cli
from training.interpolation_baselines import (SemiDenseInputs, inpaint_fill,
                                              interpolation_metrics, linear_fill,
                                              nearest_fill)

NAN = np.nan


def test_nearest_takes_the_closest_known_depth():
    depth = np.array([[1.0, NAN, NAN, 4.0, NAN]], np.float32)
    assert nearest_fill(depth).tolist() == [[1.0, 1.0, 4.0, 4.0, 4.0]]
    with pytest.raises(ValueError, match='no known pixel'):
        nearest_fill(np.full((2, 2), NAN, np.float32))


def test_linear_is_exact_on_a_plane_and_nearest_outside_the_hull():
    v, u = np.mgrid[0:20, 0:30]
    plane = (1.0 + 0.1 * u + 0.2 * v).astype(np.float32)
    depth = np.full_like(plane, NAN)
    for row, col in [(2, 2), (2, 27), (17, 2), (17, 27), (9, 14)]:
        depth[row, col] = plane[row, col]
    out = linear_fill(depth)
    assert np.allclose(out[2:18, 2:28], plane[2:18, 2:28], atol=1e-5)
    assert out[0, 0] == plane[2, 2]                  # outside the hull: nearest sample


def test_inpainting_keeps_known_pixels_and_fills_a_constant_exactly():
    depth = np.full((16, 16), NAN, np.float32)
    depth[::4, ::4] = 2.5
    out = inpaint_fill(depth)
    assert np.allclose(out, 2.5, atol=1e-4)
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(1, 3, 40, dtype=np.float32), (30, 1))
    sparse = np.where(rng.random(ramp.shape) < 0.1, ramp, NAN).astype(np.float32)
    filled = inpaint_fill(sparse)
    known = np.isfinite(sparse)
    assert np.array_equal(filled[known], sparse[known])
    assert np.abs(filled - ramp).mean() < 0.05 and filled.min() >= 1.0 - 1e-3


def test_paper_metrics_by_hand():
    gt = np.array([[1.0, 2.0], [4.0, NAN]])
    pred = np.array([[1.1, 2.2], [4.4, 9.0]])
    m = interpolation_metrics(pred, gt)
    assert m['mape'] == pytest.approx(10.0)
    # normalised by the largest ground truth (4): errors 0.025, 0.05, 0.1
    mse = (0.025 ** 2 + 0.05 ** 2 + 0.1 ** 2) / 3
    assert m['rmse_norm'] == pytest.approx(math.sqrt(mse))
    assert m['psnr'] == pytest.approx(10 * math.log10(1 / mse))
    assert m['abs_rel'] == pytest.approx(0.1)       # the depth metrics are there too


def test_semidense_inputs_are_deterministic_masks_of_the_ground_truth():
    rooms = fake_depth_scenes.FakeRooms(size=2, height=60, width=80)
    inputs = SemiDenseInputs(rooms, 'random', density=0.05, seed=3)
    a, b = inputs[1], inputs[1]
    known = np.isfinite(a['semidense_depth'])
    assert np.array_equal(known, np.isfinite(b['semidense_depth']))
    assert np.array_equal(a['semidense_depth'][known], rooms[1]['depth'][known])
    assert known.sum() <= round(0.05 * 60 * 80) and not known[0].any()   # no gt on row 0
    gradient = SemiDenseInputs(rooms, 'gradient', density=0.1)[0]
    assert 0.0 < gradient['semidense_density'] <= 0.1 + 1e-9


def semidense_model(path):
    # out = depth/s - 0.5 mask + 0.5: known pixels give their depth, unknown 0.5 s.
    spec = ModelSpec(method='semidense', input_kind='semidense', input_names=('image',),
                     input_height=60, input_width=80, input_channels=2, mean=(0.0, 0.0),
                     std=(1.0, 1.0), output_name='depth', min_depth=0.01, max_depth=100.0,
                     extras={'scale_percentile': 100.0})
    return write_affine_model(path, spec, weights=(1.0, -0.5), bias=0.5)


def test_evaluation_cli_compares_a_semidense_model_with_the_baselines(tmp_path):
    model = semidense_model(tmp_path / 'semidense.onnx')
    out = tmp_path / 'report.json'
    rc = evaluate_cli.main(['--model', str(model), '--dataset', fake_depth_scenes.NAME,
                            '--dataset-option', 'size=2', '--dataset-option', 'height=60',
                            '--dataset-option', 'width=80', '--semidense-mask', 'random',
                            '--semidense-density', '0.1', '--baseline', 'nearest',
                            '--baseline', 'linear', '--output', str(out), '--no-progress'])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report['semidense_input'] == {'mask': 'random', 'density': 0.1}
    assert set(report['baselines']) == {'nearest', 'linear'}
    # The same numbers by hand: the model's dense depth is 0.5 * max known depth where
    # unknown; nearest fills from the same deterministic inputs.
    inputs = SemiDenseInputs(fake_depth_scenes.FakeRooms('test', size=2, height=60, width=80),
                             'random', 0.1)
    model_metrics, nearest_metrics = [], []
    for i in range(2):
        sample = inputs[i]
        sparse = sample['semidense_depth']
        known = np.isfinite(sparse)
        dense = np.where(known, sparse, 0.5 * np.nanmax(sparse))
        model_metrics.append(interpolation_metrics(dense, sample['depth']))
        nearest_metrics.append(interpolation_metrics(nearest_fill(sparse), sample['depth']))
    for key in ('abs_rel', 'mape', 'rmse_norm', 'psnr'):
        assert report['metrics'][key] == pytest.approx(
            np.mean([m[key] for m in model_metrics]), rel=1e-5)
        assert report['baselines']['nearest'][key] == pytest.approx(
            np.mean([m[key] for m in nearest_metrics]), rel=1e-5)
    assert report['protocol']['median_scaling'] is False


def test_evaluation_cli_tables_several_densities(tmp_path, capsys):
    model = semidense_model(tmp_path / 'semidense.onnx')
    out = tmp_path / 'report.json'
    rc = evaluate_cli.main(['--model', str(model), '--dataset', fake_depth_scenes.NAME,
                            '--dataset-option', 'size=2', '--dataset-option', 'height=60',
                            '--dataset-option', 'width=80', '--semidense-mask', 'random',
                            '--semidense-density', '0.02', '0.1', '--baseline', 'nearest',
                            '--output', str(out), '--no-progress'])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report['semidense_input'] == {'mask': 'random', 'density': [0.02, 0.1]}
    assert set(report['by_density']) == {'0.02', '0.1'}
    assert report['metrics'] == report['by_density']['0.02']['model']
    # Each density gets its own inputs: the same numbers as a single-density run.
    inputs = SemiDenseInputs(fake_depth_scenes.FakeRooms('test', size=2, height=60, width=80),
                             'random', 0.1)
    expected = np.mean([interpolation_metrics(nearest_fill(inputs[i]['semidense_depth']),
                                              inputs[i]['depth'])['mape'] for i in range(2)])
    assert report['by_density']['0.1']['nearest']['mape'] == pytest.approx(expected, rel=1e-6)
    summary = capsys.readouterr().out.split('input           predictor')[1].splitlines()
    rows = [line.split() for line in summary[1:5]]
    assert [r[:4] for r in rows] == [['random', '2', '%', 'model'],
                                     ['random', '2', '%', 'nearest'],
                                     ['random', '10', '%', 'model'],
                                     ['random', '10', '%', 'nearest']]
    best = min(report['by_density']['0.1'][p]['mape'] for p in ('model', 'nearest'))
    marked = [r for r in rows[2:] if r[4].endswith('*')]
    assert [float(r[4].rstrip('*')) for r in marked] == [pytest.approx(best, abs=1e-3)]


def test_evaluation_cli_runs_semidense_models_at_the_images_own_resolution(tmp_path):
    """An untrained blend model (48x64) is exactly the classical blend fill; on 96x128 images
    the CLI runs it at their own resolution by default, so its metrics equal the blend
    baseline's, and moves it onto its grid with --no-native-resolution, so they do not."""
    from training.export import export_onnx
    from training.models.semidense import SemiDenseConfig, SemiDenseMethod
    method = SemiDenseMethod(SemiDenseConfig(input_height=48, input_width=64, stem_channels=4,
                                             channels=8, dilations=(1,), base_fill='blend'))
    model = tmp_path / 'blend.onnx'
    export_onnx(method, model, write_program=False)
    reports = {}
    for flag in ('--native-resolution', '--no-native-resolution'):
        out = tmp_path / f'{flag}.json'
        assert evaluate_cli.main(['--model', str(model), '--dataset', fake_depth_scenes.NAME,
                                  '--dataset-option', 'size=2', '--dataset-option', 'height=96',
                                  '--dataset-option', 'width=128', '--semidense-mask', 'random',
                                  '--semidense-density', '0.05', '--baseline', 'blend',
                                  '--output', str(out), '--no-progress', flag]) == 0
        reports[flag] = json.loads(out.read_text())
    native, grid = reports['--native-resolution'], reports['--no-native-resolution']
    for key in ('mape', 'rmse_norm'):
        assert native['metrics'][key] == pytest.approx(native['baselines']['blend'][key],
                                                       rel=1e-4)
    assert grid['metrics']['mape'] != pytest.approx(grid['baselines']['blend']['mape'],
                                                    rel=1e-3)
