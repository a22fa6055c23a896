"""Real-dataset loaders, each on a tiny fixture written here in the dataset's own format."""
import math
import struct

import cv2
import h5py
import numpy as np
import pytest

from training.datasets import build_dataset
from training.datasets.dataset_files import DatasetLayoutError
from training.datasets.kitti import project_velodyne
from training.datasets.middlebury import read_pfm, write_pfm


def _write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_u16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.asarray(values, np.uint16))


# ----------------------------------------------------------------------------- NYU v2

@pytest.fixture()
def nyu_mat(tmp_path):
    """6 pairs at 640x480 stored the MATLAB v7.3 way: every array transposed."""
    count = 6
    rgb = np.zeros((count, 480, 640, 3), np.uint8)
    depth = np.full((count, 480, 640), 2.0, np.float32)
    for i in range(count):
        rgb[i, :, :, 0] = i                     # pair id in red
        rgb[i, 10, 20] = (11, 22, 33)
        depth[i, 10, 20] = 1.5
        depth[i, 0, 0] = 0.0                    # no measurement
    path = tmp_path / 'nyu_depth_v2_labeled.mat'
    with h5py.File(path, 'w') as mat:
        mat['images'] = rgb.transpose(0, 3, 2, 1)   # (N, 3, 640, 480)
        mat['depths'] = depth.transpose(0, 2, 1)    # (N, 640, 480)
    return tmp_path


def test_nyu_reads_transposed_mat_arrays_and_splits(nyu_mat):
    options = dict(train_count=4, val_size=1)
    train = build_dataset('nyu_v2', 'train', str(nyu_mat), **options)
    val = build_dataset('nyu_v2', 'val', str(nyu_mat), **options)
    test = build_dataset('nyu_v2', 'test', str(nyu_mat), **options)
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    sample = test[1]
    assert sample['rgb'].shape == (480, 640, 3) and sample['depth'].shape == (480, 640)
    assert sample['rgb'][0, 0, 0] == 5 and tuple(sample['rgb'][10, 20]) == (11, 22, 33)
    assert sample['depth'][10, 20] == 1.5 and sample['depth'][5, 5] == 2.0
    assert np.isnan(sample['depth'][0, 0])
    assert val[0]['rgb'][0, 0, 0] == 3 and sample['name'].endswith('/0005')
    assert sample['camera'].fx == pytest.approx(518.857901)


def test_nyu_paper_split_sizes_and_eigen_resize_crop(nyu_mat):
    with pytest.raises(ValueError, match='val_size'):
        build_dataset('nyu_v2', 'val', str(nyu_mat), train_count=4, val_size=0)
    sample = build_dataset('nyu_v2', 'test', str(nyu_mat), train_count=4, val_size=0,
                           eigen_resize=True, eigen_crop=True)[0]
    assert sample['rgb'].shape == (228, 304, 3) and sample['depth'].shape == (228, 304)
    camera = sample['camera']
    # Half size (pixel centres: cx' = (cx + 0.5) / 2 - 0.5), then the crop moves it by 8, 6.
    assert camera.cx == pytest.approx((325.582449 + 0.5) / 2 - 0.5 - 8)
    assert camera.cy == pytest.approx((253.736166 + 0.5) / 2 - 0.5 - 6)
    assert camera.fx == pytest.approx(518.857901 / 2)
    # Depth is resampled by nearest neighbour: only values that exist in the source.
    assert set(np.unique(sample['depth'][np.isfinite(sample['depth'])])) <= {1.5, 2.0}


def test_nyu_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match='nyu_depth_v2_labeled.mat'):
        build_dataset('nyu_v2', 'train', str(tmp_path))
    with pytest.raises(ValueError, match='root'):
        build_dataset('nyu_v2', 'train')


# ----------------------------------------------------------------------------- KITTI

FX, CX, CY = 700.0, 300.0, 100.0
VELO_TO_CAM = [0, -1, 0, 0, 0, -1, 1, 0, 0]     # camera x = -velo y, y = -velo z, z = velo x


def _kitti_root(tmp_path, frame=69):
    date, drive = '2011_09_26', '2011_09_26_drive_0002_sync'
    root = tmp_path / 'kitti'
    calib = root / date
    calib.mkdir(parents=True)
    p2 = [FX, 0, CX, 0, 0, FX, CY, 0, 0, 0, 1, 0]
    p3 = [FX, 0, CX, -FX * 0.5, 0, FX, CY, 0, 0, 0, 1, 0]     # 0.5 m to the right
    (calib / 'calib_cam_to_cam.txt').write_text(
        'calib_time: 09-Jan-2012 13:57:47\n'
        f'R_rect_00: {" ".join(map(str, np.eye(3).ravel()))}\n'
        f'P_rect_02: {" ".join(map(str, p2))}\nP_rect_03: {" ".join(map(str, p3))}\n')
    (calib / 'calib_velo_to_cam.txt').write_text(
        'calib_time: 15-Mar-2012 11:37:16\n'
        f'R: {" ".join(map(str, VELO_TO_CAM))}\nT: 0 0 0\ndelta_f: 0 0\ndelta_c: 0 0\n')
    folder = root / date / drive
    left = np.zeros((200, 600, 3), np.uint8)
    left[65, 370] = (255, 0, 0)
    _write_rgb(folder / 'image_02' / 'data' / f'{frame:010d}.png', left)
    _write_rgb(folder / 'image_03' / 'data' / f'{frame:010d}.png', np.full_like(left, 7))
    points = np.array([[10.0, -1.0, 0.5, 0.3],     # camera (1, -0.5, 10) -> (370, 65), 10 m
                       [20.0, -2.0, 1.0, 0.3],     # same pixel, 20 m: hidden behind
                       [-5.0, 0.0, 0.0, 0.3],      # behind the car
                       [8.0, 0.0, 0.0, 0.9]],      # camera (0, 0, 8) -> (300, 100), 8 m
                      np.float32)
    scan = folder / 'velodyne_points' / 'data' / f'{frame:010d}.bin'
    scan.parent.mkdir(parents=True)
    points.tofile(scan)
    splits = root / 'splits' / 'eigen'
    splits.mkdir(parents=True)
    (splits / 'test_files.txt').write_text(f'{date}/{drive} {frame:010d} l\n'
                                           f'{date}/{drive} {frame} r\n')
    return root, f'{date}/{drive}'


def test_kitti_projects_velodyne_points_to_the_expected_pixels(tmp_path):
    root, folder = _kitti_root(tmp_path)
    dataset = build_dataset('kitti', 'test', str(root))
    assert len(dataset) == 2
    sample = dataset[0]
    depth = sample['depth']
    assert depth.shape == (200, 600)
    assert depth[65, 370] == pytest.approx(10.0)     # the nearer of the two points wins
    assert depth[100, 300] == pytest.approx(8.0)
    assert np.isfinite(depth).sum() == 2
    assert tuple(sample['rgb'][65, 370]) == (255, 0, 0)
    assert (sample['camera'].fx, sample['camera'].cx) == (FX, CX)
    assert sample['baseline'] == pytest.approx(0.5) and sample['right'][0, 0, 0] == 7
    assert sample['name'] == f'kitti/{folder}/image_02/0000000069'
    assert 'right' not in dataset[1]                 # an 'r' frame has no right view


def test_kitti_annotated_depth_png_is_value_over_256(tmp_path):
    root, folder = _kitti_root(tmp_path)
    annotated = tmp_path / 'annotated'
    values = np.zeros((200, 600), np.uint16)
    values[50, 60] = 2560                            # 10 m
    values[51, 60] = 300                             # 1.171875 m
    drive = folder.split('/')[1]
    _write_u16(annotated / 'val' / drive / 'proj_depth' / 'groundtruth' / 'image_02'
               / '0000000069.png', values)
    depth = build_dataset('kitti', 'test', str(root), depth='annotated',
                          annotated_root=str(annotated))[0]['depth']
    assert depth[50, 60] == 10.0 and depth[51, 60] == pytest.approx(300 / 256)
    assert np.isfinite(depth).sum() == 2


def test_kitti_missing_split_file_names_the_paths(tmp_path):
    root, _ = _kitti_root(tmp_path)
    with pytest.raises(DatasetLayoutError, match='eigen_zhou/train_files.txt'):
        build_dataset('kitti', 'train', str(root))


def test_project_velodyne_drops_points_outside_the_image():
    projection = np.array([[FX, 0, CX, 0], [0, FX, CY, 0], [0, 0, 1, 0]]) @ np.r_[
        np.c_[np.reshape(VELO_TO_CAM, (3, 3)), np.zeros(3)], [[0, 0, 0, 1]]]
    points = np.array([[10.0, -50.0, 0.0, 0.0]], np.float32)   # far to the right: u >> 600
    assert np.isnan(project_velodyne(points, projection, 600, 200)).all()


# ----------------------------------------------------------------------------- DIML

def test_diml_reads_millimetre_pngs_and_carves_val(tmp_path):
    part = tmp_path / 'indoor' / 'train' / 'LR'
    for scene in ('office', 'store'):
        for k in range(2):
            name = f'{scene}_{k:03d}'
            rgb = np.full((288, 512, 3), 10 * k, np.uint8)
            _write_rgb(part / scene / 'color' / f'{name}_c.png', rgb)
            depth = np.full((288, 512), 1500, np.uint16)
            depth[0, 0] = 0
            _write_u16(part / scene / 'depth_filled' / f'{name}_depth_filled.png', depth)
    train = build_dataset('diml', 'train', str(tmp_path), val_size=1)
    val = build_dataset('diml', 'val', str(tmp_path), val_size=1,
                        intrinsics=(288.0, 288.0, 255.5, 143.5))
    assert (len(train), len(val)) == (3, 1)
    sample = val[0]
    assert sample['depth'][100, 100] == pytest.approx(1.5) and np.isnan(sample['depth'][0, 0])
    assert sample['name'] == 'diml/store/store_001_c'
    assert sample['camera'].cx == 255.5 and 'camera' not in train[0]
    with pytest.raises(DatasetLayoutError, match='HR'):
        build_dataset('diml', 'train', str(tmp_path), resolution='HR')


# ----------------------------------------------------------------------------- SceneNet

def test_scenenet_converts_ray_length_to_z(tmp_path):
    trajectory = tmp_path / 'val' / '0' / '223'
    for frame in (0, 25):
        _write_rgb(trajectory / 'photo' / f'{frame}.jpg', np.full((240, 320, 3), 128, np.uint8))
        _write_u16(trajectory / 'depth' / f'{frame}.png', np.full((240, 320), 2000, np.uint16))
    dataset = build_dataset('scenenet', 'test', str(tmp_path), split_dirs={'test': 'val'})
    assert len(dataset) == 2 and dataset[1]['name'] == 'scenenet/0/223/25'
    sample = dataset[0]
    camera = sample['camera']
    assert camera.fx == pytest.approx(160 / math.tan(math.radians(30)))
    assert camera.fy == pytest.approx(120 / math.tan(math.radians(22.5)))
    depth = sample['depth']
    assert depth[120, 160] == pytest.approx(2.0)          # on the optical axis: z = L
    x, y = (0 - 160) / camera.fx, (0 - 120) / camera.fy   # the top-left corner pixel
    assert depth[0, 0] == pytest.approx(2.0 / math.sqrt(1 + x * x + y * y), rel=1e-6)
    with pytest.raises(DatasetLayoutError, match='train'):
        build_dataset('scenenet', 'train', str(tmp_path))


# ----------------------------------------------------------------------------- PittsStereo

def test_pitts_rgbnir_pairs_and_keypoint_disparity(tmp_path):
    (tmp_path / 'lists').mkdir()
    (tmp_path / 'lists' / 'test.txt').write_text('20170222_0951 k1 0.5 0.25\n')
    data = tmp_path / 'data' / '20170222_0951'
    _write_rgb(data / 'RGBResize' / 'k1_RGBResize.png', np.full((20, 40, 3), 50, np.uint8))
    nir = np.full((20, 40), 200, np.uint8)
    (data / 'NIRResize').mkdir(parents=True)
    cv2.imwrite(str(data / 'NIRResize' / 'k1_NIRResize.png'), nir)
    (data / 'Keypoint').mkdir()
    (data / 'Keypoint' / 'k1_Keypoint.txt').write_text('0.5 0.25 0.1 3\n')
    sample = build_dataset('pitts_rgbnir', 'test', str(tmp_path))[0]
    assert sample['rgb'].shape == (20, 40, 3) and sample['right_nir'].shape == (20, 40)
    assert sample['right_nir'][3, 3] == 200
    disparity = sample['disparity']
    # x = 0.5 * 40 -> column 19, y = 0.25 * 20 -> row 4 (round(.) - 1), d = 0.1 * 40 px.
    assert disparity[4, 19] == pytest.approx(4.0) and np.isfinite(disparity).sum() == 1
    with pytest.raises(DatasetLayoutError, match='train.txt'):
        build_dataset('pitts_rgbnir', 'train', str(tmp_path))


# ----------------------------------------------------------------------------- Middlebury

def test_pfm_round_trip_in_both_byte_orders(tmp_path):
    image = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    image[0, 0] = np.inf
    for little in (True, False):
        write_pfm(tmp_path / 'a.pfm', image, little_endian=little)
        np.testing.assert_array_equal(read_pfm(tmp_path / 'a.pfm'), image)
    colour = np.random.default_rng(0).random((2, 3, 3)).astype(np.float32)
    write_pfm(tmp_path / 'c.pfm', colour)
    np.testing.assert_array_equal(read_pfm(tmp_path / 'c.pfm'), colour)


def test_pfm_header_semantics_from_hand_written_bytes(tmp_path):
    # 2x2 grey map, big-endian (positive scale), rows stored bottom to top.
    body = struct.pack('>4f', 3.0, 4.0, 1.0, 2.0)
    (tmp_path / 'b.pfm').write_bytes(b'Pf\n2 2\n1.0\n' + body)
    np.testing.assert_array_equal(read_pfm(tmp_path / 'b.pfm'), [[1.0, 2.0], [3.0, 4.0]])
    (tmp_path / 'l.pfm').write_bytes(b'Pf\n2 1\n-1.0\n' + struct.pack('<2f', 5.0, 6.0))
    np.testing.assert_array_equal(read_pfm(tmp_path / 'l.pfm'), [[5.0, 6.0]])
    (tmp_path / 'x.pfm').write_bytes(b'P6\n2 1\n255\n\0\0\0\0\0\0')
    with pytest.raises(ValueError, match='not a PFM'):
        read_pfm(tmp_path / 'x.pfm')


def test_middlebury_depth_is_baseline_f_over_d_plus_doffs(tmp_path):
    scene = tmp_path / 'Motorcycle-perfect'
    scene.mkdir()
    (scene / 'calib.txt').write_text(
        'cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]\n'
        'cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]\n'
        'doffs=124.343\nbaseline=193.001\nwidth=8\nheight=6\nndisp=270\n')
    _write_rgb(scene / 'im0.png', np.full((6, 8, 3), 90, np.uint8))
    _write_rgb(scene / 'im1.png', np.full((6, 8, 3), 91, np.uint8))
    disparity = np.full((6, 8), 100.0, np.float32)
    disparity[2, 3] = np.inf
    write_pfm(scene / 'disp0.pfm', disparity, little_endian=False)
    sample = build_dataset('middlebury', 'test', str(tmp_path))[0]
    expected = 0.193001 * 3979.911 / (100.0 + 124.343)
    assert sample['depth'][0, 0] == pytest.approx(expected, rel=1e-6)     # 3.4238... m
    assert np.isnan(sample['depth'][2, 3]) and np.isnan(sample['disparity'][2, 3])
    assert sample['disparity_offset'] == 124.343 and sample['baseline'] == 0.193001
    assert sample['camera'].cx == 1244.772 and sample['right'][0, 0, 0] == 91
    with pytest.raises(ValueError, match='scenes'):
        build_dataset('middlebury', 'train', str(tmp_path))
    half = build_dataset('middlebury', 'test', str(tmp_path), downscale=2)[0]
    assert half['disparity'].shape == (3, 4) and half['disparity'][0, 0] == 50.0
    # Depth does not change with the resolution: f and doffs halve with d.
    assert half['depth'][0, 0] == pytest.approx(expected, rel=1e-6)


def test_scikit_image_motorcycle_is_the_real_held_out_pair():
    dataset = build_dataset('middlebury_motorcycle', 'test')
    assert len(dataset) == 1
    sample = dataset[0]
    assert sample['rgb'].shape == (500, 741, 3) and sample['right'].shape == (500, 741, 3)
    disparity, depth = sample['disparity'], sample['depth']
    known = np.isfinite(disparity)
    assert 0.9 < known.mean() < 0.95
    assert 7.0 < disparity[known].min() and disparity[known].max() < 61.0
    # A motorcycle 2-5 m in front of the rig (B = 193 mm, f = 995 px at this size).
    assert 2.0 < np.nanmin(depth) and np.nanmax(depth) < 5.1
    assert 2.5 < np.nanmedian(depth) < 3.0
    # The convention is Middlebury's, x_right = x_left - d: warping the right view by -d
    # reproduces the left one far better than +d would.
    rows, cols = np.mgrid[0:500, 0:741].astype(np.float32)
    d = np.where(known, disparity, 0).astype(np.float32)
    left = sample['rgb'].astype(np.float32)
    err = [np.abs(cv2.remap(sample['right'], cols + s * d, rows, cv2.INTER_LINEAR)
                  .astype(np.float32) - left).mean(axis=2)[known].mean() for s in (-1, 1)]
    assert err[0] < 15 and err[0] < err[1] / 3
    with pytest.raises(ValueError, match="'test'"):
        build_dataset('middlebury_motorcycle', 'train')


def test_registry_errors_are_clear():
    with pytest.raises(ValueError, match='unknown dataset'):
        build_dataset('imagenet', 'train')
    with pytest.raises(ValueError, match='split'):
        build_dataset('synthetic', 'everything')
