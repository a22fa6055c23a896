"""The synthetic scene generator: ranges, determinism, exact stereo, NIR, sequences."""
import cv2
import numpy as np
import pytest

from training.datasets import build_dataset
from training.datasets.synthetic import (OUTPUTS, SyntheticScenes, SyntheticSequence,
                                         pinhole_camera, render_sample)
from training.datasets.synthetic_geometry import (Box, CameraPose, Lighting, Material, Scene,
                                                  cast_rays)
from training.datasets.synthetic_render import shade
from training.datasets.synthetic_scenes import build_scene

SIZE = dict(height=96, width=96)


def test_sample_has_every_output_with_contract_types():
    sample = build_dataset('synthetic', 'train', scene='indoor', size=3, **SIZE)[0]
    assert set(OUTPUTS) <= set(sample)
    assert sample['rgb'].shape == (96, 96, 3) and sample['rgb'].dtype == np.uint8
    assert sample['right'].shape == (96, 96, 3) and sample['right'].dtype == np.uint8
    assert sample['nir'].shape == (96, 96) and sample['nir'].dtype == np.uint8
    assert sample['depth'].dtype == np.float32 and sample['disparity'].dtype == np.float32
    assert sample['semidense_mask'].dtype == bool
    camera = sample['camera']
    # 60 degree horizontal field of view: fx = (W / 2) / tan(30 deg).
    assert camera.fx == pytest.approx(48.0 / np.tan(np.radians(30.0)))
    assert (camera.cx, camera.cy) == (47.5, 47.5)
    assert sample['baseline'] == pytest.approx(0.12)
    assert sample['name'] == 'synthetic/train/000000/indoor'


def test_outputs_option_renders_only_what_is_asked():
    sample = SyntheticScenes('val', size=2, scene='outdoor', outputs=('rgb', 'depth'), **SIZE)[1]
    assert {'rgb', 'depth'} <= set(sample)
    assert not {'right', 'disparity', 'nir', 'semidense_mask'} & set(sample)


@pytest.mark.parametrize('scene, lo, hi', [('indoor', 0.5, 10.0), ('outdoor', 1.0, 80.0)])
def test_depth_stays_in_the_sensor_range_of_the_scene_type(scene, lo, hi):
    dataset = SyntheticScenes('train', size=4, scene=scene, **SIZE)
    for i in range(len(dataset)):
        sample = dataset[i]
        depth, disparity = sample['depth'], sample['disparity']
        valid = np.isfinite(depth)
        assert depth[valid].min() >= lo and depth[valid].max() <= hi
        geometry = disparity > 0            # every pixel that is not sky
        # Range gating (like a Kinect / Velodyne) only trims a sliver, by construction.
        assert (geometry & ~valid).mean() < 0.02
        if scene == 'indoor':
            assert geometry.all() and valid.mean() > 0.98 and depth[valid].max() < 9.0
        else:
            sky = disparity == 0
            assert 0.02 < sky.mean() < 0.6 and np.isnan(depth[sky]).all()
            assert depth[valid].max() > 25.0


def test_same_seed_same_sample_other_split_or_seed_differs():
    a = SyntheticScenes('train', size=4, **SIZE)[2]
    b = SyntheticScenes('train', size=4, **SIZE)[2]
    for key in ('rgb', 'right', 'nir', 'semidense_mask'):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a['depth'], b['depth'])   # NaNs in the same places
    val = SyntheticScenes('val', size=4, **SIZE)[2]
    other_seed = SyntheticScenes('train', size=4, seed=1, **SIZE)[2]
    assert not np.array_equal(a['rgb'], val['rgb'])
    assert not np.array_equal(a['rgb'], other_seed['rgb'])


def _render_pair(kind: str, seed: int, baseline: float):
    scene, trajectory = build_scene(kind, np.random.default_rng(seed))
    camera = pinhole_camera(128, 128, 65.0)
    sample = render_sample(scene, camera, trajectory.start, baseline,
                           np.random.default_rng(0), noise=False)
    left = cast_rays(scene, camera, trajectory.start)
    right = cast_rays(scene, camera, trajectory.start.shifted(baseline))
    return sample, left, right, camera


@pytest.mark.parametrize('kind, baseline', [('indoor', 0.12), ('outdoor', 0.54)])
def test_disparity_is_exact_and_warping_the_right_view_gives_the_left(kind, baseline):
    sample, left, right, camera = _render_pair(kind, 5, baseline)
    depth, disparity = left.depth, sample['disparity']
    geometry = np.isfinite(depth)
    np.testing.assert_allclose(disparity[geometry], camera.fx * baseline / depth[geometry],
                               rtol=1e-6)
    height, width = depth.shape
    rows, cols = np.mgrid[0:height, 0:width]
    x_right = cols - disparity                      # x_right = x_left - d
    x0 = np.floor(x_right).astype(int)
    a = x_right - x0
    inside = geometry & (x0 >= 1) & (x0 + 2 < width)
    x0 = np.clip(x0, 1, width - 3)
    inv = [1.0 / right.depth[rows, x0 + k] for k in (-1, 0, 1, 2)]
    same = np.ones_like(inside)
    for k in (-1, 0, 1, 2):
        same &= right.ids[rows, x0 + k] == left.ids
    # On a plane, inverse depth is affine along an image row: where the right view sees
    # the same planar patch (no occlusion, no box edge) linear interpolation is exact.
    planar = (np.abs(inv[0] - 2 * inv[1] + inv[2]) < 1e-4 * inv[1]) & \
        (np.abs(inv[1] - 2 * inv[2] + inv[3]) < 1e-4 * inv[1])
    seen = inside & same & planar
    assert seen.mean() > 0.6
    interpolated = (1 - a) * inv[1] + a * inv[2]
    np.testing.assert_allclose(interpolated[seen] * depth[seen], 1.0, atol=2e-4)

    # The images agree too: the right view resampled at x - d reproduces the left view.
    map_x, map_y = x_right.astype(np.float32), rows.astype(np.float32)
    left_rgb = sample['rgb'].astype(np.float32)
    error = np.abs(cv2.remap(sample['right'].astype(np.float32), map_x, map_y,
                             cv2.INTER_LINEAR) - left_rgb).mean(axis=2)
    shifted = np.abs(cv2.remap(sample['right'].astype(np.float32), map_x - 2, map_y,
                               cv2.INTER_LINEAR) - left_rgb).mean(axis=2)
    assert np.median(error[seen]) < 1.0 and error[seen].mean() < 3.0
    assert error[seen].mean() < 0.4 * shifted[seen].mean()


def test_nir_is_not_a_function_of_rgb():
    for scene in ('indoor', 'outdoor'):
        dataset = SyntheticScenes('test', size=3, scene=scene, **SIZE)
        for i in range(len(dataset)):
            sample = dataset[i]
            gray = cv2.cvtColor(sample['rgb'], cv2.COLOR_RGB2GRAY).astype(float).ravel()
            correlation = np.corrcoef(gray, sample['nir'].astype(float).ravel())[0, 1]
            assert correlation < 0.9


def test_vegetation_is_darker_than_paint_in_rgb_but_brighter_in_nir():
    # Two boxes side by side, same distance and light: green foliage and a grey paint with
    # a low NIR reflectance (many dyes absorb NIR). The order of brightness flips.
    foliage = Material('foliage', (128.0, 128.0), tint=(1, 1, 1), nir_gain=1.0)
    paint = Material('car_paint', (128.0, 128.0), tint=(0.5, 0.5, 0.5), nir_gain=0.3)
    light = Lighting(sun_direction=(0.0, 0.6, -0.8), sun_rgb=(3.0, 3.0, 3.0),
                     ambient_rgb=(0.4, 0.4, 0.4), nir_sun=3.0, nir_ambient=0.4,
                     nir_illuminator=0.0)
    scene = Scene('outdoor', [Box((-0.6, 0.0, 4.0), (0.5, 0.5, 0.2), foliage),
                              Box((0.6, 0.0, 4.0), (0.5, 0.5, 0.2), paint)], light)
    camera = pinhole_camera(64, 64, 60.0)
    pose = CameraPose.from_angles((0.0, 0.0, 0.0), 0.0, 0.0)
    hits = cast_rays(scene, camera, pose)
    rgb, nir = shade(scene, camera, pose, hits, with_nir=True)
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    on_foliage, on_paint = hits.ids == 8, hits.ids == 9
    assert on_foliage.sum() > 200 and on_paint.sum() > 200
    assert gray[on_foliage].mean() < gray[on_paint].mean()
    assert nir[on_foliage].mean() > nir[on_paint].mean()


def test_semidense_mask_density_on_synthetic_images():
    dataset = SyntheticScenes('train', size=6, scene='mixed', **SIZE)
    for i in range(len(dataset)):
        sample = dataset[i]
        density = sample['semidense_mask'].mean()
        assert 0.10 <= density <= 0.15
        # The kept pixels are the textured ones.
        gray = cv2.cvtColor(sample['rgb'], cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        mask = sample['semidense_mask']
        assert grad[mask].mean() > 3 * grad[~mask].mean()


def test_sequence_moves_one_camera_through_one_scene():
    sequence = SyntheticSequence(seed=3, scene='outdoor', frames=3, rate_hz=10.0, speed=8.0,
                                 yaw_rate=0.05, outputs=('rgb', 'depth'), **SIZE)
    frames = [sequence[i] for i in range(3)]
    assert [f['stamp'] for f in frames] == pytest.approx([0.0, 0.1, 0.2])
    steps = [np.linalg.norm(frames[i + 1]['pose'][:3, 3] - frames[i]['pose'][:3, 3])
             for i in range(2)]
    # 8 m/s for 0.1 s along an arc of radius 160 m: the chord is 0.8 m to 1e-5.
    assert steps == pytest.approx([0.8, 0.8], abs=1e-4)
    forward = [f['pose'][:3, 2] for f in frames]       # optical z axis in the world
    heading = [np.arctan2(f[0], f[2]) for f in forward]
    assert np.diff(heading) == pytest.approx([0.005, 0.005], abs=1e-9)
    again = SyntheticSequence(seed=3, scene='outdoor', frames=3, rate_hz=10.0, speed=8.0,
                              yaw_rate=0.05, outputs=('rgb', 'depth'), **SIZE)[2]
    np.testing.assert_array_equal(again['rgb'], frames[2]['rgb'])
    assert not np.array_equal(frames[0]['rgb'], frames[2]['rgb'])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match='scene'):
        SyntheticScenes('train', scene='forest')
    with pytest.raises(ValueError, match='no root'):
        SyntheticScenes('train', root='/data')
    with pytest.raises(ValueError, match='unknown synthetic outputs'):
        SyntheticScenes('train', size=1, outputs=('rgb', 'lidar'), **SIZE)[0]
    with pytest.raises(IndexError):
        SyntheticScenes('train', size=2)[2]


def test_batched_small_boxes_cast_exactly_like_one_box_at_a_time(monkeypatch):
    import training.datasets.synthetic_geometry as geometry
    camera = pinhole_camera(96, 96, 70.0)
    for kind in ('indoor', 'outdoor'):
        scene, trajectory = build_scene(kind, np.random.default_rng(11))
        batched = cast_rays(scene, camera, trajectory.start)
        monkeypatch.setattr(geometry, 'SMALL_WINDOW', 0)
        single = cast_rays(scene, camera, trajectory.start)
        monkeypatch.undo()
        np.testing.assert_array_equal(batched.depth, single.depth)
        np.testing.assert_array_equal(batched.ids, single.ids)
        # Shading finds a box's pixels inside its window: every visible box has one that
        # holds all of its pixels.
        for hits in (batched, single):
            visible = {int(i) for i in np.unique(hits.ids) if i >= 8}
            assert len(visible) > 3 and visible <= set(hits.windows)
            for surface in visible:
                v0, v1, u0, u1 = hits.windows[surface]
                assert (hits.ids[v0:v1, u0:u1] == surface).sum() == (hits.ids == surface).sum()
