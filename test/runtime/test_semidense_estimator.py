"""SemiDenseEstimator on a hand-made model: input moved onto the model's grid, output back to
the input's size in metres, known depths kept, model-size output with scaled intrinsics; on
an exported nearest-fill network; and the shipped model's output scaling with its input."""
from pathlib import Path

import numpy as np
import pytest
from fixtures.models import write_affine_model

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.semidense import resample_sparse_depth
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator


def model(tmp_path, channels=2, kind='semidense'):
    # out = depth/s - 0.5 mask + 0.5 (+ 0 * intensity): known -> its depth, unknown -> 0.5 s
    spec = ModelSpec(method='semidense', input_kind=kind, input_names=('image',),
                     input_height=24, input_width=32, input_channels=channels,
                     mean=(0.0,) * channels, std=(1.0,) * channels, output_name='depth',
                     min_depth=0.01, max_depth=100.0, extras={'scale_percentile': 100.0})
    path = write_affine_model(tmp_path / f'{kind}{channels}.onnx', spec,
                              weights=(1.0, -0.5, 0.0), bias=0.5)
    return open_model(str(path), 'onnxruntime')


def test_input_of_another_size_in_metres_with_known_depth_kept(tmp_path):
    estimator = SemiDenseEstimator(model(tmp_path))
    depth = np.full((48, 64), np.nan, np.float32)
    depth[10, 20], depth[0, 0], depth[1, 1] = 4.0, np.inf, 0.0     # inf, 0: unknown
    result = estimator.estimate(depth, keep_input_depth=True)
    assert result.depth.shape == (48, 64) and result.extras['scale'] == 4.0
    # The sample lands on model pixel (5, 10); far from it the network says 0.5 * 4 m.
    assert result.depth[40, 60] == pytest.approx(2.0)
    assert result.depth[10, 20] == 4.0                          # kept exactly
    assert np.isfinite(result.depth).all() and result.depth.min() >= 2.0 - 1e-6
    near = estimator.estimate(depth, keep_input_depth=False).depth
    assert 2.0 < near[10, 20] <= 4.0                            # bilinear around the sample


def test_model_resolution_output_scales_the_camera(tmp_path):
    estimator = SemiDenseEstimator(model(tmp_path), output_resolution='model')
    camera = CameraIntrinsics(64, 48, fx=60.0, fy=60.0, cx=31.5, cy=23.5)
    depth = np.full((48, 64), np.nan, np.float32)
    depth[::2, ::2] = 3.0                     # one sample on every model pixel
    result = estimator.estimate(depth, camera, keep_input_depth=True)
    assert result.depth.shape == (24, 32) and np.allclose(result.depth, 3.0)
    assert (result.camera.width, result.camera.fx) == (32, 30.0)


def test_wrong_models_and_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="input_kind 'semidense'"):
        SemiDenseEstimator(model(tmp_path, kind='gray'))
    estimator = SemiDenseEstimator(model(tmp_path, channels=3))
    assert estimator.needs_intensity
    depth = np.full((24, 32), 2.0, np.float32)
    with pytest.raises(ImageFormatError, match='intensity'):
        estimator.estimate(depth)
    gray = np.zeros((24, 32), np.uint8)
    assert np.allclose(estimator.estimate(depth, intensity=gray).depth, 2.0)
    with pytest.raises(ImageFormatError, match='no known depth'):
        estimator.estimate(np.zeros((24, 32), np.float32), intensity=gray)


SHIPPED = Path(__file__).resolve().parents[2] / 'models' / 'semidense_synthetic.onnx'


def scene(height=48, width=64, density=0.1, seed=0):
    """A tilted plane with a box in front, its intensity, and a gradient-like sample mask."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 3.0 + 2.0 * v / height + u / width
    depth[height // 4:height // 2, width // 4:width // 2] = 1.5
    gray = np.clip(40 * depth + rng.normal(0, 20, depth.shape), 0, 255).astype(np.uint8)
    sparse = np.where(rng.random(depth.shape) < density, depth, np.nan).astype(np.float32)
    return sparse, gray


def fill_model(tmp_path, height=48, width=64, base_fill='nearest', random_weights=True):
    """A tiny 'log_geometric_mean' SemiDenseNet with random weights, exported to ONNX."""
    import torch

    from training.export import export_onnx
    from training.models.semidense import SemiDenseConfig, SemiDenseMethod
    method = SemiDenseMethod(SemiDenseConfig(input_height=height, input_width=width,
                                             stem_channels=4, channels=8, dilations=(1, 2),
                                             activation='relu', base_fill=base_fill))
    torch.manual_seed(0)
    if random_weights:
        with torch.no_grad():
            for p in method.network.parameters():
                p.normal_(0.0, 0.1)
    path = tmp_path / f'fill_{base_fill}_{random_weights}.onnx'
    export_onnx(method, path, write_program=False)
    return open_model(str(path), 'onnxruntime')


@pytest.mark.parametrize('base_fill, native', [('nearest', False), ('blend', False),
                                               ('blend', True)])
def test_fill_model_keeps_known_depth_and_scales_with_it(tmp_path, base_fill, native):
    estimator = SemiDenseEstimator(fill_model(tmp_path, base_fill=base_fill),
                                   native_resolution=native)
    assert estimator.needs_intensity
    sparse, gray = scene(96, 128)                           # twice the model's size
    result = estimator.estimate(sparse, intensity=gray, keep_input_depth=True)
    known = np.isfinite(sparse)
    assert result.depth.shape == (96, 128) and np.isfinite(result.depth).all()
    assert np.array_equal(result.depth[known], sparse[known])
    # extras['scale']: the geometric mean of the known depths on the grid the fills use
    grid = sparse if native else resample_sparse_depth(sparse, 48, 64)
    assert result.extras['scale'] == pytest.approx(
        float(np.exp(np.log(grid[np.isfinite(grid)]).mean())), rel=1e-5)
    doubled = estimator.estimate(2.0 * sparse, intensity=gray, keep_input_depth=True)
    assert np.allclose(doubled.depth, 2.0 * result.depth, rtol=1e-4)
    with pytest.raises(ImageFormatError, match='intensity'):
        estimator.estimate(sparse)


@pytest.mark.parametrize('density', [0.01, 0.1])
def test_shipped_model_output_doubles_when_every_known_depth_doubles(density):
    """The exported model itself (not the estimator around it) is scale-equivariant."""
    from depth_nodes.core.semidense import semidense_fill_tensor
    model = open_model(str(SHIPPED), 'onnxruntime')
    spec = model.spec
    assert spec.extras['depth_normalization'] == 'log_geometric_mean'
    sparse, gray = scene(*spec.input_size, density=density, seed=1)
    tensor = semidense_fill_tensor(sparse, spec, gray)
    doubled = tensor.copy()
    metres = [i for i, name in enumerate(spec.extras['channels']) if name.endswith('_depth')]
    assert metres[0] == 0
    doubled[0, metres] *= 2.0                               # every depth (the fills' too)
    name = spec.input_names[0]
    once = model.engine.run({name: tensor})[spec.output_name]
    twice = model.engine.run({name: doubled})[spec.output_name]
    assert once.shape == (1, 1, *spec.input_size) and np.isfinite(once).all()
    assert np.allclose(twice, 2.0 * once, rtol=0.01)
    assert not np.allclose(once, 2.0 * once, rtol=0.01)    # not vacuous: depths are > 0


@pytest.mark.parametrize('length, tile, margin, starts', [
    (640, 640, 64, [0]), (741, 640, 64, [0, 101]), (500, 480, 64, [0, 20]),
    (2000, 640, 64, [0, 453, 907, 1360]), (96, 48, 12, [0, 24, 48])])
def test_tiles_cover_the_image_and_leave_each_inner_border_to_a_neighbour(
        length, tile, margin, starts):
    from depth_nodes.core.semidense import tile_cuts, tile_starts
    assert tile_starts(length, tile, margin) == starts
    cuts = tile_cuts(starts, tile, length)
    assert cuts[0][0] == 0 and cuts[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))           # no gap, no overlap
    for i, (start, (a, b)) in enumerate(zip(starts, cuts)):
        assert start <= a < b <= start + tile
        if i > 0:
            assert a - start >= margin                  # the tile's own border is not used
        if i < len(starts) - 1:
            assert start + tile - b >= margin
    with pytest.raises(ValueError, match='shorter'):
        tile_starts(tile - 1, tile, margin)


def test_native_resolution_runs_the_fills_at_the_inputs_size_in_tiles(tmp_path):
    """An untrained blend model outputs its classical blend fill exactly (f = 0), so tiled
    over a 96x128 input (3x3 windows of its 48x64) it is the blend at 96x128 itself;
    moved onto its grid and back (native_resolution off) it is not."""
    from training.interpolation_baselines import blend_fill
    model = fill_model(tmp_path, base_fill='blend', random_weights=False)
    calls = []
    run = model.engine.run
    model.engine.run = lambda feeds: calls.append(next(iter(feeds.values())).shape) or run(feeds)
    sparse, gray = scene(96, 128, density=0.05)
    tiled = SemiDenseEstimator(model).estimate(sparse, intensity=gray).depth
    assert calls == [(1, 6, 48, 64)] * 9
    expected = blend_fill(sparse)
    assert np.allclose(tiled, expected, rtol=1e-4)
    calls.clear()
    grid = SemiDenseEstimator(model, native_resolution=False).estimate(
        sparse, intensity=gray).depth
    assert calls == [(1, 6, 48, 64)]
    assert not np.allclose(grid, expected, rtol=1e-2)


def test_a_model_trained_on_other_fill_channels_is_refused(tmp_path):
    """A spec naming input channels this version no longer computes (the coarse linear fill
    of earlier models) is an error that says so, not a silently wrong input."""
    from dataclasses import replace
    loaded = fill_model(tmp_path, base_fill='blend')
    assert SemiDenseEstimator(loaded).spec.extras['channels'][5] == 'linear_depth'
    channels = list(loaded.spec.extras['channels'][:5]) + ['coarse_linear_depth']
    loaded.spec = replace(loaded.spec, extras={**loaded.spec.extras, 'channels': channels})
    with pytest.raises(ValueError, match="coarse_linear_depth.*retrain"):
        SemiDenseEstimator(loaded)
