"""Scene geometry of the synthetic dataset and vectorised ray casting (numpy, no loops over
pixels).

Frames: world X right, Y up (floor/road at Y = 0), Z forward at zero yaw. Camera rays are
expressed in the optical frame (x right, y down, z forward; REP 103) as (x/z, y/z, 1), so the
ray parameter t of a hit *is* its depth Z. A stereo right camera has the same rotation and
sits ``baseline`` metres along the left camera's +x axis: the pair is rectified by
construction and a left pixel at depth Z appears in the right image at x - fx * B / Z.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.synthetic_textures import remap_points

SKY, ROAD, FIRST_BOX = -1, 6, 8          # ids in the id buffer; room faces are 0..5
# Boxes whose screen window has at most this many pixels are ray cast together.
SMALL_WINDOW = 4096
ROOM_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                        dtype=np.float32)   # inward normals of faces -X, +X, -Y, +Y, -Z, +Z


@dataclass(frozen=True)
class Material:
    texture: str                                # key of synthetic_textures.TEXTURE_GENERATORS
    texels_per_metre: tuple[float, float]       # texture scale along the surface's (u, v)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)   # linear RGB of the tintable part
    nir_gain: float = 1.0                       # NIR reflectance factor of the tintable part
    emission: float = 0.0                       # > 0: self-luminous (lamps, windows), RGB
    emission_nir: float = 0.0
    uv_offset: tuple[float, float] = (0.0, 0.0)   # metres


@dataclass(frozen=True)
class Box:
    center: tuple[float, float, float]
    half_size: tuple[float, float, float]       # metres, in the box frame
    material: Material
    yaw: float = 0.0                            # radians about world +Y


@dataclass(frozen=True)
class Room:
    """An axis-aligned room seen from inside; faces -X, +X, floor, ceiling, -Z, +Z."""
    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    materials: tuple[Material, ...]


@dataclass(frozen=True)
class Road:
    """The ground plane Y = 0 with painted lane lines along Z."""
    material: Material
    marking: Material
    lane_lines: tuple[float, ...]               # X of each line, metres
    dashed: tuple[bool, ...]
    line_width: float = 0.12
    dash_period: float = 9.0
    dash_length: float = 3.0


@dataclass(frozen=True)
class Lighting:
    sun_direction: tuple[float, float, float]   # unit vector towards the sun (or lamp dir)
    sun_rgb: tuple[float, float, float]
    ambient_rgb: tuple[float, float, float]
    nir_sun: float
    nir_ambient: float
    nir_illuminator: float                      # active NIR source at the camera, W-ish at 1 m
    lamp_position: tuple[float, float, float] | None = None
    lamp_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sky_horizon_rgb: tuple[float, float, float] = (0.75, 0.82, 0.9)
    sky_zenith_rgb: tuple[float, float, float] = (0.25, 0.42, 0.8)
    sky_nir: float = 0.06
    cloud_offset: tuple[float, float] = (0.0, 0.0)


@dataclass
class GroundShading:
    """Sun/lamp visibility and ambient occlusion on the ground plane, as a 2D grid."""
    origin: tuple[float, float]                 # world (X, Z) of cell (0, 0)
    cell: float                                 # metres per cell
    grid: np.ndarray                            # (nz, nx, 2): visibility (1 = lit), ambient

    def lookup(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(visibility, ambient occlusion factor) at world ground points (x, z)."""
        mx = (x - np.float32(self.origin[0])) / np.float32(self.cell)
        mz = (z - np.float32(self.origin[1])) / np.float32(self.cell)
        visibility, occlusion = remap_points(self.grid, mx, mz, cv2.BORDER_CONSTANT, 1.0)
        return visibility, occlusion


@dataclass
class Scene:
    kind: str                                   # 'indoor' | 'outdoor'
    boxes: list[Box]
    lighting: Lighting
    room: Room | None = None
    road: Road | None = None
    ground: GroundShading | None = field(default=None, repr=False)
    # Caches built on first use: box corners and parameters (box_table), and the
    # renderer's surface tables (synthetic_render).
    corners: np.ndarray | None = field(default=None, repr=False, compare=False)
    box_params: np.ndarray | None = field(default=None, repr=False, compare=False)
    tables: object = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class CameraPose:
    """world_from_optical rotation (3x3) and camera centre in world coordinates (metres)."""
    rotation: np.ndarray
    position: np.ndarray

    @classmethod
    def from_angles(cls, position, yaw: float, pitch: float, roll: float = 0.0) -> 'CameraPose':
        """yaw > 0 turns right (towards +X), pitch > 0 looks up, roll about the optical axis."""
        cy, sy = np.cos(yaw), np.sin(yaw)
        cp, sp = np.cos(pitch), np.sin(pitch)
        cr, sr = np.cos(roll), np.sin(roll)
        r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
        r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        optical_to_world = np.diag([1.0, -1.0, 1.0])      # optical y is down, world Y is up
        return cls(r_yaw @ r_pitch @ optical_to_world @ r_roll,
                   np.asarray(position, dtype=np.float64))

    def shifted(self, baseline: float) -> 'CameraPose':
        """The right camera of a rectified pair: same rotation, +baseline along optical x."""
        return CameraPose(self.rotation, self.position + baseline * self.rotation[:, 0])

    def matrix(self) -> np.ndarray:
        """4x4 world_from_optical transform."""
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = self.rotation, self.position
        return out


@lru_cache(maxsize=8)
def _optical_rays(width: int, height: int, fx: float, fy: float, cx: float, cy: float):
    u = (np.arange(width, dtype=np.float64) - cx) / fx
    v = (np.arange(height, dtype=np.float64) - cy) / fy
    shape = (height, width)
    return np.broadcast_to(u[None, :], shape), np.broadcast_to(v[:, None], shape)


def world_rays(camera: CameraIntrinsics, pose: CameraPose) -> np.ndarray:
    """(3, H, W) float32 world directions of the rays (x/z, y/z, 1) of every pixel."""
    ru, rv = _optical_rays(camera.width, camera.height, camera.fx, camera.fy, camera.cx,
                           camera.cy)
    r = pose.rotation
    dirs = np.empty((3, camera.height, camera.width), dtype=np.float32)
    for axis in range(3):
        dirs[axis] = r[axis, 0] * ru + r[axis, 1] * rv + r[axis, 2]
    return dirs


@dataclass
class RayHits:
    """Nearest hit of every pixel of one view."""
    depth: np.ndarray           # (H, W) float32 depth Z in metres, inf = sky
    ids: np.ndarray             # (H, W) int16 surface id: SKY, room face 0..5, ROAD, boxes
    dirs: np.ndarray            # (3, H, W) float32 world ray directions (x/z, y/z, 1)
    windows: dict               # box surface id -> pixel window (v0, v1, u0, u1)


def cast_rays(scene: Scene, camera: CameraIntrinsics, pose: CameraPose) -> RayHits:
    """Ray cast every pixel against the room, the road plane and the boxes (z-buffer)."""
    dirs = world_rays(camera, pose)
    origin = pose.position.astype(np.float32)
    depth = np.full((camera.height, camera.width), np.inf, dtype=np.float32)
    ids = np.full(depth.shape, SKY, dtype=np.int16)
    windows = {}
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if scene.room is not None:
            _hit_room(scene.room, origin, dirs, depth, ids)
        if scene.road is not None:
            dy = dirs[1]
            t = np.where(dy < 0, -origin[1] / dy, np.inf).astype(np.float32)
            closer = t < depth
            depth[closer], ids[closer] = t[closer], ROAD
        small = []
        for index, window in _box_windows(scene, camera, pose, depth):
            if (window[1] - window[0]) * (window[3] - window[2]) <= SMALL_WINDOW:
                small.append((index, window))     # batched below: fewer numpy calls
            elif _hit_box(scene.boxes[index], FIRST_BOX + index, origin, dirs, depth, ids,
                          window):
                windows[FIRST_BOX + index] = window
        if small:
            _hit_small_boxes(scene, small, origin, dirs, depth, ids, windows)
    return RayHits(depth, ids, dirs, windows)


def _hit_room(room: Room, origin, dirs, depth, ids) -> None:
    # Inside a box every ray leaves through exactly one face: per axis the exit distance is
    # (upper - o) / d for d > 0 and (lower - o) / d for d < 0; the nearest axis wins.
    best = depth
    for axis in range(3):
        d = dirs[axis]
        t_hi = (room.upper[axis] - origin[axis]) / d
        t_lo = (room.lower[axis] - origin[axis]) / d
        t = np.where(d > 0, t_hi, np.where(d < 0, t_lo, np.inf)).astype(np.float32)
        closer = t < best
        best[closer] = t[closer]
        ids[closer] = np.where(d[closer] > 0, 2 * axis + 1, 2 * axis)


def box_corners(box: Box) -> np.ndarray:
    """(8, 3) world coordinates of a box's corners."""
    return _corners(np.asarray(box.center, np.float64)[None],
                    np.asarray(box.half_size, np.float64)[None], np.array([box.yaw]))[0]


def _corners(center: np.ndarray, half: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                     dtype=np.float64)
    local = signs[None] * half[:, None, :]                          # (n, 8, 3)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    world = np.empty_like(local)
    world[..., 0] = c * local[..., 0] + s * local[..., 2]
    world[..., 1] = local[..., 1]
    world[..., 2] = -s * local[..., 0] + c * local[..., 2]
    return world + center[:, None, :]


def box_table(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(corners (n, 8, 3) float64, parameters (8, n) float32: centre x y z, half sizes
    x y z, cos and sin of the yaw) of the scene's boxes, cached on the scene."""
    if scene.box_params is None or scene.box_params.shape[1] != len(scene.boxes):
        rows = np.array([b.center + b.half_size + (b.yaw,) for b in scene.boxes],
                        np.float64).reshape(-1, 7)
        scene.corners = _corners(rows[:, :3], rows[:, 3:6], rows[:, 6])
        scene.box_params = np.vstack([rows[:, :6].T, np.cos(rows[:, 6]),
                                      np.sin(rows[:, 6])]).astype(np.float32)
    return scene.corners, scene.box_params


def _box_windows(scene: Scene, camera: CameraIntrinsics, pose: CameraPose, depth: np.ndarray):
    """Yield (box index, pixel window (v0, v1, u0, u1)) for boxes that may be visible,
    nearest first, skipping boxes whose window is already covered by nearer surfaces.

    Depth is linear over a box, so its smallest corner Z bounds the Z of every visible
    point of it: a window whose current depths are all nearer hides the box completely.
    """
    corners, _ = box_table(scene)
    optical = (corners - pose.position) @ pose.rotation           # (boxes, 8, 3)
    z = optical[:, :, 2]
    in_front = z > 1e-3
    with np.errstate(divide='ignore', invalid='ignore'):
        u = camera.fx * optical[:, :, 0] / z + camera.cx
        v = camera.fy * optical[:, :, 1] / z + camera.cy
    u0 = np.clip(np.floor(u.min(axis=1)), 0, camera.width).astype(int)
    u1 = np.clip(np.ceil(u.max(axis=1)) + 1, 0, camera.width).astype(int)
    v0 = np.clip(np.floor(v.min(axis=1)), 0, camera.height).astype(int)
    v1 = np.clip(np.ceil(v.max(axis=1)) + 1, 0, camera.height).astype(int)
    z_near = z.min(axis=1)
    for index in np.argsort(z_near).tolist():
        if not in_front[index].any():
            continue
        if not in_front[index].all():   # straddles the camera plane: test every pixel
            window = (0, camera.height, 0, camera.width)
        elif u0[index] >= u1[index] or v0[index] >= v1[index]:
            continue
        else:
            window = (v0[index], v1[index], u0[index], u1[index])
        if depth[window[0]:window[1], window[2]:window[3]].max() < z_near[index]:
            continue
        yield index, window


def _to_box_frame(box: Box, x, z):
    """World X/Z components (rotation part only) -> box frame."""
    if box.yaw == 0.0:
        return x, z
    c, s = np.float32(np.cos(box.yaw)), np.float32(np.sin(box.yaw))
    return c * x - s * z, s * x + c * z


def _slab_interval(origin, direction, half_size):
    """Slab test in the box frame: a ray o + t d is inside the box |x| <= h between
    near = max over the three axes of the entry distance min(t1, t2) and far = min of the
    exit distance max(t1, t2), with t1,2 = (-/+h - o) / d; it hits when near <= far."""
    near, far = None, None
    for o, d, h in zip(origin, direction, half_size):
        inv = np.float32(1.0) / d
        t1 = (-h - o) * inv
        t2 = (h - o) * inv
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        near = lo if near is None else np.maximum(near, lo)
        far = hi if far is None else np.minimum(far, hi)
    return near, far


def _hit_box(box: Box, box_id: int, origin, dirs, depth, ids, window) -> bool:
    v0, v1, u0, u1 = window
    dx, dy, dz = (dirs[a, v0:v1, u0:u1] for a in range(3))
    rel = origin - np.asarray(box.center, dtype=np.float32)
    ox, oz = _to_box_frame(box, rel[0], rel[2])
    lx, lz = _to_box_frame(box, dx, dz)
    hx, hy, hz = (np.float32(h) for h in box.half_size)
    near, far = _slab_interval((ox, rel[1], oz), (lx, dy, lz), (hx, hy, hz))
    sub_depth = depth[v0:v1, u0:u1]
    hit = (near <= far) & (near > 0) & (near < sub_depth)
    if not hit.any():
        return False
    sub_depth[hit] = near[hit]
    ids[v0:v1, u0:u1][hit] = box_id
    return True


def _hit_small_boxes(scene: Scene, small, origin, dirs, depth, ids, windows) -> None:
    """The slab test of _hit_box for many small boxes at once: every (pixel, box) pair of
    their windows in one set of array operations, then the nearest hit per pixel."""
    _, params = box_table(scene)
    width = depth.shape[1]
    pixels, owners = [], []
    for index, (v0, v1, u0, u1) in small:
        flat = (np.arange(v0, v1)[:, None] * width + np.arange(u0, u1)[None, :]).ravel()
        pixels.append(flat)
        owners.append(np.full(flat.size, index))
    pixel, box = np.concatenate(pixels), np.concatenate(owners)
    cx, cy, cz, hx, hy, hz, cos, sin = (column.take(box) for column in params)
    flat_dirs = dirs.reshape(3, -1)
    dx, dy, dz = (flat_dirs[a].take(pixel) for a in range(3))
    rx, ry, rz = origin[0] - cx, origin[1] - cy, origin[2] - cz
    ox, oz = cos * rx - sin * rz, sin * rx + cos * rz
    lx, lz = cos * dx - sin * dz, sin * dx + cos * dz
    near, far = _slab_interval((ox, ry, oz), (lx, dy, lz), (hx, hy, hz))
    hit = np.flatnonzero((near <= far) & (near > 0))
    pixel, box, near = pixel[hit], box[hit], near[hit]
    order = np.lexsort((near, pixel))           # by pixel, nearest first
    pixel, box, near = pixel[order], box[order], near[order]
    first = np.ones(pixel.size, bool)
    first[1:] = pixel[1:] != pixel[:-1]
    pixel, box, near = pixel[first], box[first], near[first]
    flat_depth, flat_ids = depth.reshape(-1), ids.reshape(-1)
    closer = near < flat_depth[pixel]
    flat_depth[pixel[closer]] = near[closer]
    flat_ids[pixel[closer]] = FIRST_BOX + box[closer]
    placed = dict(small)
    for index in np.unique(box[closer]).tolist():
        windows[FIRST_BOX + index] = placed[index]
