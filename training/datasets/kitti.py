"""KITTI raw (synced + rectified) with Eigen-style split files.

Layout (http://www.cvlibs.net/datasets/kitti/raw_data.php):

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <root>/<date>/<drive>_sync/image_02/data/<frame:010d>.png    (left colour camera)
    <root>/<date>/<drive>_sync/image_03/data/<frame:010d>.png    (right colour camera)
    <root>/<date>/<drive>_sync/velodyne_points/data/<frame:010d>.bin   (float32 x y z r)

Split files list one frame per line, ``2011_09_26/2011_09_26_drive_0002_sync 0000000069 l``
(folder, frame, side l = image_02 / r = image_03), as monodepth2 ships them
(splits/eigen/test_files.txt, splits/eigen_zhou/{train,val}_files.txt).

Depth, ``depth='velodyne'``: the scan projected into the image with
P_rect_0X @ R_rect_00 @ [R|T]_velo_to_cam; depth is the camera z, the nearest point wins a
pixel, pixels are rounded to the nearest centre (0-based; monodepth2 subtracts a further
pixel, a MATLAB left-over). ``depth='annotated'``: the KITTI depth benchmark's 16-bit PNGs
(value / 256 = metres, 0 = unknown) from ``annotated_root`` (or the raw tree) under
<train|val>/<drive>_sync/proj_depth/groundtruth/image_0X/<frame>.png. Evaluation crops
(Garg/Eigen) belong to training.metrics, not here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, rasterize_depth
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import (DatasetLayoutError, read_depth_png, read_rgb,
                                             require_file, require_root)

CAMERA_DIR = {'l': 'image_02', 'r': 'image_03'}
DEFAULT_SPLIT_DIRS = {'train': ('eigen_zhou', 'eigen_full', 'eigen'),
                      'val': ('eigen_zhou', 'eigen_full', 'eigen'), 'test': ('eigen',)}


def read_calib_file(path: Path) -> dict[str, np.ndarray]:
    """KITTI ``key: v1 v2 ...`` calibration file -> {key: float64 array}; lines whose values
    are not numbers (calib_time) are skipped."""
    values = {}
    for line in require_file(path, 'KITTI calibration file').read_text().splitlines():
        key, sep, rest = line.partition(':')
        if not sep:
            continue
        try:
            values[key.strip()] = np.array([float(x) for x in rest.split()])
        except ValueError:
            continue
    return values


def velodyne_to_image(date_dir: Path, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """(3x4 velodyne -> image projection, 3x4 rectified P_rect of ``camera`` 'image_0X')."""
    cam = read_calib_file(date_dir / 'calib_cam_to_cam.txt')
    velo = read_calib_file(date_dir / 'calib_velo_to_cam.txt')
    index = camera[-2:]
    try:
        p_rect = cam[f'P_rect_{index}'].reshape(3, 4)
        r_rect = np.eye(4)
        r_rect[:3, :3] = cam['R_rect_00'].reshape(3, 3)
        velo_to_cam = np.eye(4)
        velo_to_cam[:3, :3] = velo['R'].reshape(3, 3)
        velo_to_cam[:3, 3] = velo['T']
    except KeyError as exc:
        raise DatasetLayoutError(f'calibration in {date_dir} lacks {exc}') from None
    return p_rect @ r_rect @ velo_to_cam, p_rect


def project_velodyne(points: np.ndarray, projection: np.ndarray, width: int, height: int
                     ) -> np.ndarray:
    """(N, >=3) velodyne points -> (height, width) float32 depth, NaN where no point lands."""
    points = points[points[:, 0] >= 0]          # in front of the car (velodyne x forward)
    homogeneous = np.c_[points[:, :3], np.ones(len(points))]
    image = homogeneous @ projection.T
    z = image[:, 2]
    front = z > 0
    u = np.rint(image[front, 0] / z[front]).astype(np.int64)
    v = np.rint(image[front, 1] / z[front]).astype(np.int64)
    z = z[front].astype(np.float32)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    grid = CameraIntrinsics(width, height, 1.0, 1.0, 0.0, 0.0)
    return rasterize_depth(u[inside], v[inside], z[inside], grid)


def read_split_file(path: Path) -> list[tuple[str, int, str]]:
    entries = []
    for number, line in enumerate(require_file(path, 'KITTI split file').read_text()
                                  .splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] not in CAMERA_DIR):
            raise ValueError(f'{path}:{number}: expected "<date>/<drive>_sync <frame> [l|r]", '
                             f'got {line!r}')
        entries.append((fields[0], int(fields[1]), fields[2] if len(fields) == 3 else 'l'))
    return entries


@register_dataset('kitti')
class KittiRaw:
    """Samples: rgb, depth (sparse LiDAR or annotated, NaN = none), camera, name and, for
    left ('l') frames with ``stereo``, right + baseline (the image_03 view)."""

    def __init__(self, split: str, root: str | None = None, *, split_file: str | None = None,
                 split_name: str | None = None, depth: str = 'velodyne',
                 annotated_root: str | None = None, stereo: bool = True):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        if depth not in ('velodyne', 'annotated'):
            raise ValueError(f"depth must be 'velodyne' or 'annotated', got {depth!r}")
        self.root = require_root(root, 'kitti', 'the KITTI raw data (<date>/<drive>_sync/...)')
        if split_file is None:
            names = (split_name,) if split_name else DEFAULT_SPLIT_DIRS[split]
            candidates = [self.root / 'splits' / n / f'{split}_files.txt' for n in names]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise DatasetLayoutError(
                    f'no KITTI {split} split file: looked for '
                    f'{", ".join(map(str, candidates))}; pass split_file=<path>')
            split_file = found[0]
        self.entries = read_split_file(Path(split_file))
        self.depth, self.stereo = depth, stereo
        self.annotated_root = Path(annotated_root) if annotated_root else self.root
        self._calib: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _image_path(self, folder: str, camera: str, frame: int) -> Path:
        path = self.root / folder / camera / 'data' / f'{frame:010d}.png'
        jpg = path.with_suffix('.jpg')      # monodepth2's converted copies
        return jpg if not path.exists() and jpg.exists() else path

    def _projection(self, folder: str, camera: str):
        key = (folder.split('/')[0], camera)
        if key not in self._calib:
            self._calib[key] = velodyne_to_image(self.root / key[0], camera)
        return self._calib[key]

    def _annotated_depth(self, folder: str, camera: str, frame: int) -> np.ndarray:
        drive = Path(folder).name
        relative = Path('proj_depth') / 'groundtruth' / camera / f'{frame:010d}.png'
        candidates = [self.annotated_root / part / drive / relative for part in ('train', 'val')]
        candidates.append(self.root / folder / relative)
        for path in candidates:
            if path.is_file():
                return read_depth_png(path, 1.0 / 256.0, 'KITTI annotated depth PNG')
        raise DatasetLayoutError(f'no annotated depth for {folder} {frame}: looked for '
                                 f'{", ".join(map(str, candidates))}')

    def __getitem__(self, index: int) -> Sample:
        folder, frame, side = self.entries[index]
        camera_dir = CAMERA_DIR[side]
        rgb = read_rgb(self._image_path(folder, camera_dir, frame), 'KITTI image')
        height, width = rgb.shape[:2]
        projection, p_rect = self._projection(folder, camera_dir)
        camera = CameraIntrinsics.from_k(p_rect[:, :3].ravel(), width, height)
        if self.depth == 'velodyne':
            scan_path = self.root / folder / 'velodyne_points' / 'data' / f'{frame:010d}.bin'
            scan = np.fromfile(require_file(scan_path, 'velodyne scan'), dtype=np.float32)
            if scan.size % 4:
                raise ValueError(f'{scan_path}: size is not a multiple of 4 float32 (x y z r)')
            depth = project_velodyne(scan.reshape(-1, 4), projection, width, height)
        else:
            depth = self._annotated_depth(folder, camera_dir, frame)
        sample = {'rgb': rgb, 'depth': depth, 'camera': camera,
                  'name': f'kitti/{folder}/{camera_dir}/{frame:010d}'}
        if self.stereo and side == 'l':
            sample['right'] = read_rgb(self._image_path(folder, 'image_03', frame),
                                       'KITTI right image')
            _, p_right = self._projection(folder, 'image_03')
            # P_rect_0X[0, 3] = -fx * (camera X offset from camera 0): the baseline is the
            # difference of those offsets.
            sample['baseline'] = float((p_rect[0, 3] - p_right[0, 3]) / p_rect[0, 0])
        return sample
