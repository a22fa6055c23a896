"""The issue-21 world of the synthetic generator (variety=True): robot cameras and focal
lengths, clutter, curved and slanted surfaces, occluders, photograph textures, imaging."""
import numpy as np
import pytest

from training.datasets import synthetic_textures
from training.datasets.synthetic import (ROBOT_FOV_DEG, Imaging, SyntheticScenes, _to_uint8,
                                         draw_imaging, pinhole_camera, render_sample)
from training.datasets.synthetic_geometry import (Box, CameraPose, Lighting, Material, Room,
                                                  Scene, cast_rays)
from training.datasets.synthetic_scenes import (COLUMN_HALF_WIDTH, ROBOT_CAMERA_HEIGHT,
                                                add_subject, build_indoor,
                                                faceted_ball, faceted_column, stepped_ramp)
from training.datasets.synthetic_textures import PHOTO_TEXTURES, photo_tile

SIZE = dict(height=96, width=96)
PAINT = Material('car_paint', (64.0, 64.0))


def _depth_at_centre(boxes, position, yaw=0.0, pitch=0.0):
    scene = Scene('indoor', boxes, Lighting((0, 1, 0), (0, 0, 0), (0.2, 0.2, 0.2), 0, 0, 0))
    camera = pinhole_camera(65, 65, 20.0)
    hits = cast_rays(scene, camera, CameraPose.from_angles(position, yaw, pitch))
    return float(hits.depth[32, 32])


def test_faceted_column_is_round_within_its_facet_tolerance():
    # Three squares of half width h turned by 30 deg: seen along direction theta the outline
    # is h / cos(d) from the axis, d the largest angle between theta and a square's nearest
    # face normal: h / cos 30 deg when facing a normal (theta = 0), h sqrt 2 at 15 deg.
    column = faceted_column((0.0, 1.0, 0.0), 0.3, 1.0, PAINT)
    h = 0.3 * COLUMN_HALF_WIDTH
    assert h == pytest.approx(0.3 / 1.2779, abs=1e-4)
    assert [b.yaw for b in column] == pytest.approx([0.0, np.pi / 6, np.pi / 3])
    depths = {}
    for angle in np.radians([0, 5, 15, 30, 45, 75]):
        position = (-2.0 * np.sin(angle), 1.0, -2.0 * np.cos(angle))
        depths[round(np.degrees(angle))] = _depth_at_centre(column, position, yaw=angle)
    assert depths[0] == pytest.approx(2 - h / np.cos(np.pi / 6), abs=1e-5)
    assert depths[30] == pytest.approx(depths[0], abs=1e-5)
    assert depths[15] == pytest.approx(2 - h * np.sqrt(2), abs=1e-5)
    assert depths[45] == pytest.approx(depths[15], abs=1e-5)
    assert all(abs((2 - d) / 0.3 - 1) < 0.11 for d in depths.values())


def test_faceted_ball_has_the_sphere_height_and_near_point():
    ball = faceted_ball((0.0, 0.5, 0.0), 0.5, PAINT, slices=4)
    assert max(b.center[1] + b.half_size[1] for b in ball) == pytest.approx(1.0)
    assert min(b.center[1] - b.half_size[1] for b in ball) == pytest.approx(0.0)
    # The slice centred 0.125 m above the centre has chord radius sqrt(0.5^2 - 0.125^2) =
    # 0.48412; from 3 m along -Z its outline faces the camera at h / cos 30 deg.
    h = 0.48412 * COLUMN_HALF_WIDTH
    assert _depth_at_centre(ball, (0.0, 0.5 + 0.124, -3.0)) == pytest.approx(
        3 - h / np.cos(np.pi / 6), abs=1e-4)


def test_stepped_ramp_rises_linearly_along_its_yaw():
    ramp = stepped_ramp(1.0, 2.0, np.pi / 2, length=1.6, rise=0.8, half_width=0.3,
                        material=PAINT, steps=8)
    # Step k: top at 0.8 (k + 1) / 8, centred (k + 0.5) * 0.2 m along +X (yaw 90 deg).
    for k, step in enumerate(ramp):
        assert 2 * step.half_size[1] == pytest.approx(0.1 * (k + 1))
        assert step.center[0] == pytest.approx(1.0 + 0.2 * (k + 0.5))
        assert step.center[2] == pytest.approx(2.0)
        assert step.half_size[2] == pytest.approx(0.1)


def test_robot_cameras_span_heights_pitches_and_focal_lengths():
    heights, pitches = [], []
    for seed in range(40):
        _, trajectory = build_indoor(np.random.default_rng(seed), variety=True)
        heights.append(trajectory.start.position[1])
        pitches.append(trajectory.pitch)
        assert abs(trajectory.roll) <= 0.12
    lo, hi = ROBOT_CAMERA_HEIGHT
    assert lo <= min(heights) < 0.5 and 1.4 < max(heights) <= hi     # ground robot to head
    assert min(pitches) < -0.35 and max(pitches) > 0.08    # beyond the classic world's range
    dataset = SyntheticScenes('train', size=12, scene='indoor', variety=True,
                              outputs=('depth',), **SIZE)
    fx = np.array([dataset[i]['camera'].fx for i in range(len(dataset))])
    # fx = (W / 2) / tan(fov / 2) for fov in ROBOT_FOV_DEG.
    assert fx.min() >= 48.0 / np.tan(np.radians(ROBOT_FOV_DEG[1] / 2)) - 1e-9
    assert fx.max() <= 48.0 / np.tan(np.radians(ROBOT_FOV_DEG[0] / 2)) + 1e-9
    assert fx.max() - fx.min() > 15.0


def _inside(box: Box, point) -> bool:
    rel = np.asarray(point) - np.asarray(box.center)
    c, s = np.cos(box.yaw), np.sin(box.yaw)
    local = (c * rel[0] - s * rel[2], rel[1], s * rel[0] + c * rel[2])
    return all(abs(x) <= h for x, h in zip(local, box.half_size))


def test_clutter_occluders_and_photographs_without_swallowing_the_camera():
    classic, varied, photo, total = 0, 0, 0, 0
    for seed in range(20):
        scene, trajectory = build_indoor(np.random.default_rng(seed), variety=True)
        plain, _ = build_indoor(np.random.default_rng(seed))
        classic += len(plain.boxes)
        varied += len(scene.boxes)
        camera = trajectory.start.position
        assert not any(_inside(box, camera) for box in scene.boxes)
        materials = [b.material for b in scene.boxes] + list(scene.room.materials)
        photo += sum(m.texture in PHOTO_TEXTURES for m in materials)
        total += len(materials)
        assert not any(m.texture.startswith('photo_') for m in
                       [b.material for b in plain.boxes] + list(plain.room.materials))
    assert varied > classic + 20 * 6              # >= 4 clutter objects, many multi-box
    assert 0.2 < photo / total < 0.6              # PHOTO_PROBABILITY = 0.4 (+ stacked tops)


def test_subject_stands_in_the_middle_of_the_view():
    from training.datasets.synthetic_geometry import Room
    room = Room((-5, 0, 0), (5, 3, 12), (PAINT,) * 6)
    placed = 0
    for seed in range(30):
        boxes = []
        add_subject(np.random.default_rng(seed), room, (0.0, 1.0), 0.3, boxes)
        if not boxes:
            continue
        placed += 1
        centres = np.array([b.center for b in boxes])
        bearing = np.arctan2(centres[:, 0] - 0.0, centres[:, 2] - 1.0)
        distance = np.hypot(centres[:, 0], centres[:, 2] - 1.0)
        # Within half width 1 m (0.4 across) of a point 1.3-3.5 m away at yaw 0.3 +- 0.2.
        assert np.all(np.abs(bearing - 0.3) < 0.2 + np.arcsin(1.0 / 1.3))
        assert np.all((distance > 1.3 - 1.1) & (distance < 3.5 + 1.1))
        assert min(b.center[1] - b.half_size[1] for b in boxes) >= -1e-9   # on or above floor
        assert 3 <= len(boxes) <= 8 * 12                                    # 3-8 parts
    assert 10 < placed < 25                       # 60 % of the frames


def test_variety_depth_in_range_with_near_objects():
    dataset = SyntheticScenes('train', size=16, scene='indoor', variety=True,
                              outputs=('rgb', 'depth'), **SIZE)
    near = 0
    for i in range(len(dataset)):
        depth = dataset[i]['depth']
        valid = np.isfinite(depth)
        assert depth[valid].min() >= 0.5 and depth[valid].max() <= 10.0
        assert valid.mean() > 0.5
        near += np.nanmin(depth) < 1.5
    assert near >= 4           # clutter and occluders close to the camera in many frames


def test_photo_tile_is_linear_mirrored_and_never_evaluation_data(monkeypatch):
    from skimage import data
    # A 300x400 photograph, sRGB 128 on the left half of the centre square, 255 right.
    image = np.full((300, 400, 3), 128, np.uint8)
    image[:, 200:] = 255
    monkeypatch.setattr(data, 'astronaut', lambda: image)
    tile = photo_tile('astronaut')
    t = synthetic_textures.TILE
    assert tile.shape == (t, t, 5)
    # sRGB -> linear: (128 / 255) ** 2.2 = 0.2195; 1.0 stays 1.0.
    assert tile[10, 10, :3] == pytest.approx([0.2195] * 3, abs=1e-4)
    assert tile[10, t // 2 - 10, :3] == pytest.approx([1.0] * 3, abs=1e-5)
    # Mirrored 2 x 2: seamless when tiled (the right edge meets the left edge's mirror).
    np.testing.assert_array_equal(tile[:, :t // 2], tile[:, t // 2:][:, ::-1])
    np.testing.assert_array_equal(tile[:t // 2], tile[t // 2:][::-1])
    assert tile[10, 10, 4] == 0.25                   # a colour photo keeps most of its colour
    with pytest.raises(ValueError, match='evaluation'):
        photo_tile('stereo_motorcycle')
    assert not any('motorcycle' in name for name in PHOTO_TEXTURES)


def test_tone_curve_exposure_and_imaging_draws():
    # Linear radiance 1, exposure ln 2: 1 - exp(-ln 2) = 0.5; 255 * 0.5 ** (1 / 2.2) = 186.08
    # and 255 * 0.5 ** (1 / 2.6) = 195.33, +0.5 then truncation.
    radiance = np.ones((2, 2, 3), np.float32)
    rng = np.random.default_rng(0)
    assert _to_uint8(radiance.copy(), np.log(2), rng, 0.0)[0, 0, 0] == 186
    assert _to_uint8(radiance.copy(), np.log(2), rng, 0.0, 1 / 2.6)[0, 0, 0] == 195
    draws = [draw_imaging(np.random.default_rng(seed)) for seed in range(200)]
    keys = np.array([d.exposure_key for d in draws])
    gains = np.array([d.white_balance for d in draws])
    assert 0.06 <= keys.min() < 0.1 and 0.4 < keys.max() <= 0.45
    assert 0.8 <= gains.min() < 0.82 and 1.18 < gains.max() <= 1.2
    blurred = np.array([d.blur_sigma > 0 for d in draws])
    assert 0.5 < blurred.mean() < 0.7            # 60 % of the frames are blurred
    assert all(0.5 <= d.noise_std <= 5.0 and 1 / 2.6 <= d.gamma <= 1 / 1.8 for d in draws)


def test_white_balance_and_blur_act_on_the_rendered_image():
    room = Room((-2, 0, 0), (2, 2.5, 5), (Material('floor_tiles', (200.0, 200.0)),) * 6)
    light = Lighting((0, 1, 0), (0, 0, 0), (1.0, 1.0, 1.0), 0, 0, 0)
    scene = Scene('indoor', [], light, room=room)
    camera = pinhole_camera(64, 48, 70.0)
    pose = CameraPose.from_angles((0, 1.2, 0.5), 0.0, -0.2)

    def render(imaging):
        return render_sample(scene, camera, pose, 0.1, np.random.default_rng(1), ('rgb',),
                             noise=False, imaging=imaging)['rgb'].astype(np.float64)

    plain = render(Imaging(0.2))
    red = render(Imaging(0.2, white_balance=(1.5, 1.0, 1.0)))
    assert red[..., 0].mean() / red[..., 1].mean() > 1.1 * plain[..., 0].mean() / \
        plain[..., 1].mean()
    blurred = render(Imaging(0.2, blur_sigma=1.2))
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.8 * np.abs(np.diff(plain, axis=1)).mean()


def test_variety_fraction_mixes_the_two_worlds():
    half = SyntheticScenes('train', size=40, scene='indoor', variety=0.5, outputs=('depth',),
                           **SIZE)
    # The classic world always has a 60 deg camera: fx = 48 / tan(30 deg) = 83.14.
    classic = [abs(half[i]['camera'].fx - 48.0 / np.tan(np.radians(30.0))) < 1e-9
               for i in range(len(half))]
    assert 10 < sum(classic) < 30
    with pytest.raises(ValueError, match='variety'):
        SyntheticScenes('train', variety=1.5)


def test_read_noise_covers_images_larger_than_its_bank():
    """A 741x500 RGB image (1.1 M values) is larger than the 2^20-value noise bank: it reads
    the bank cyclically instead of failing, and its noise still has the asked deviation."""
    radiance = np.full((500, 741, 3), np.log(2.0), np.float32)     # 1 - e^-x = 0.5 at exposure 1
    rng = np.random.default_rng(0)
    clean = _to_uint8(radiance.copy(), 1.0, rng, 0.0).astype(np.float64)
    noisy = _to_uint8(radiance.copy(), 1.0, rng, 4.0).astype(np.float64)
    assert noisy.shape == (500, 741, 3)
    assert np.std(noisy - clean) == pytest.approx(4.0, rel=0.05)
    assert abs(np.mean(noisy - clean)) < 0.1
