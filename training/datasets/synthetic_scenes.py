"""Procedural layouts: NYU-like indoor rooms and KITTI-like outdoor streets.

Each builder draws everything from the Generator it is given (nothing global), so a seed
fixes the scene. Distances are metres in the world frame of synthetic_render (X right,
Y up, Z forward; floor/road at Y = 0). The camera is placed so that what it sees lies in the
scene type's depth range (indoor 0.5-10 m like a Kinect, outdoor 1-80 m like a Velodyne);
pixels that still fall outside are masked by the sensor range, as real ground truth is.

``variety=True`` (indoor) builds the world of issue 21, meant to carry over to real images:
camera heights, pitches and rolls as robots have them (ROBOT_*; the focal length is drawn by
the dataset, synthetic.ROBOT_FOV_DEG), clutter of many shapes and sizes (boxes, stacks,
faceted columns and balls for curved surfaces, stepped ramps for slanted ones), occluders
near the camera, a compound subject in the middle of the view, textures from real
photographs (synthetic_textures.PHOTO_TEXTURES) and a wider range of lamp power, colour and
ambient light.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from training.datasets.synthetic_geometry import (Box, CameraPose, Lighting, Material, Road,
                                                  Room, Scene)
from training.datasets.synthetic_render import build_ground_shading
from training.datasets.synthetic_textures import PHOTO_TEXTURES

DEPTH_RANGE = {'indoor': (0.5, 10.0), 'outdoor': (1.0, 80.0)}
DEFAULT_FOV_DEG = {'indoor': 60.0, 'outdoor': 70.0}   # horizontal; NYU Kinect ~62 deg
# variety=True: a ground robot's camera at 0.15 m up to a mobile manipulator's head at 1.8 m
# (metres); pitch (radians, > 0 up) reaches -0.6 only for cameras >= 1 m high (lower ones
# would see only the floor within 0.5 m); roll of a robot on uneven ground.
ROBOT_CAMERA_HEIGHT = (0.15, 1.8)
ROBOT_PITCH = (-0.6, 0.15)
ROBOT_ROLL = (-0.12, 0.12)
PHOTO_PROBABILITY = 0.4        # chance that a room face or object wears a photograph


@dataclass(frozen=True)
class Trajectory:
    """Smooth camera motion through one scene: constant speed along the heading, which
    turns at a constant rate (rad/s); pose(t) for t >= 0 in seconds."""
    start: CameraPose
    yaw: float
    pitch: float
    roll: float
    speed: float            # m/s
    yaw_rate: float         # rad/s

    def pose(self, t: float) -> CameraPose:
        yaw = self.yaw + self.yaw_rate * t
        if abs(self.yaw_rate) < 1e-9:
            dx, dz = self.speed * t * np.sin(self.yaw), self.speed * t * np.cos(self.yaw)
        else:   # arc of a circle: integral of (sin, cos)(yaw0 + w t) * v dt
            k = self.speed / self.yaw_rate
            dx = k * (np.cos(self.yaw) - np.cos(yaw))
            dz = k * (np.sin(yaw) - np.sin(self.yaw))
        position = self.start.position + np.array([dx, 0.0, dz])
        return CameraPose.from_angles(position, yaw, self.pitch, self.roll)


def _colour(rng, lo=0.25, hi=1.0, saturation=(0.0, 0.6)) -> tuple[float, float, float]:
    """A random linear-RGB tint: a grey level mixed with a random hue."""
    grey = rng.uniform(lo, hi)
    hue = rng.dirichlet((1.0, 1.0, 1.0)) * 3.0
    s = rng.uniform(*saturation)
    rgb = grey * ((1 - s) + s * hue)
    return tuple(float(c) for c in np.clip(rgb, 0.02, 1.0))


def _material(rng, texture: str, tile_metres: float | tuple[float, float], *, tint=None,
              nir_gain=None, **kwargs) -> Material:
    tile_u, tile_v = (tile_metres, tile_metres) if np.isscalar(tile_metres) else tile_metres
    jitter = rng.uniform(0.85, 1.2)
    return Material(texture, (256 / (tile_u * jitter), 256 / (tile_v * jitter)),
                    tint=_colour(rng) if tint is None else tint,
                    # A dye or paint's NIR reflectance is unrelated to its visible colour.
                    nir_gain=float(rng.uniform(0.3, 1.1)) if nir_gain is None else nir_gain,
                    uv_offset=(float(rng.uniform(0, 10)), float(rng.uniform(0, 10))), **kwargs)


# ----------------------------------------------------------------------------- indoor

def build_indoor(rng: np.random.Generator, travel: float = 0.0, variety: bool = False
                 ) -> tuple[Scene, Trajectory]:
    """A furnished room; the camera starts near one end and may move ``travel`` metres.
    ``variety``: the issue-21 world (module docstring)."""
    width = rng.uniform(3.0, 6.0)
    length = rng.uniform(3.5, 8.0) + travel
    height = rng.uniform(2.4, 3.1)
    wall_kind = rng.choice(['plaster', 'plaster', 'wallpaper', 'brick'])
    wall_tile = {'plaster': 2.0, 'wallpaper': 1.0, 'brick': 0.9}[wall_kind]
    wall = _material(rng, wall_kind, wall_tile, tint=_colour(rng, 0.5, 1.0, (0, 0.35)),
                     nir_gain=None if wall_kind != 'brick' else 1.0)
    accent = _material(rng, 'plaster', 2.0, tint=_colour(rng, 0.35, 1.0))
    floor_kind = rng.choice(['wood', 'floor_tiles', 'fabric'])
    floor_tile = {'wood': 1.2, 'floor_tiles': 1.2, 'fabric': 0.4}[floor_kind]
    floor = _material(rng, floor_kind, floor_tile, tint=_colour(rng, 0.4, 1.0, (0, 0.4)),
                      nir_gain=1.0 if floor_kind == 'wood' else None)
    ceiling = _material(rng, 'plaster', 2.0, tint=_colour(rng, 0.8, 1.0, (0, 0.1)))
    walls = [wall, wall, wall, wall]
    walls[rng.integers(4)] = accent
    faces = [walls[0], walls[1], floor, ceiling, walls[2], walls[3]]
    if variety:
        faces = [photo_material(rng, (1.0, 3.0)) if rng.random() < PHOTO_PROBABILITY else face
                 for face in faces]
    room = Room((-width / 2, 0.0, 0.0), (width / 2, height, length), tuple(faces))

    cam_x = rng.uniform(-width / 2 + 1.0, width / 2 - 1.0)
    cam_z = rng.uniform(0.4, 1.2)
    cam_y = rng.uniform(1.0, 1.7)
    yaw = rng.uniform(-0.5, 0.5)
    pitch = rng.uniform(-0.35, 0.08)
    roll = rng.uniform(-0.04, 0.04)
    if variety:
        cam_y = rng.uniform(*ROBOT_CAMERA_HEIGHT)
        pitch = rng.uniform(ROBOT_PITCH[0] * min(cam_y, 1.0), ROBOT_PITCH[1])
        roll = rng.uniform(*ROBOT_ROLL)
    start = CameraPose.from_angles((cam_x, cam_y, cam_z), yaw, pitch, roll)
    path = np.array([[cam_x, cam_z],
                     [cam_x + travel * np.sin(yaw), cam_z + travel * np.cos(yaw)]])

    boxes: list[Box] = []
    footprints: list[tuple[float, float, float, float]] = []
    for _ in range(rng.integers(3, 9)):
        _place_furniture(rng, room, path, boxes, footprints)
    _decorate_walls(rng, room, boxes)
    if variety:
        add_clutter(rng, room, (cam_x, cam_z), boxes)
        add_occluder(rng, room, (cam_x, cam_y, cam_z), yaw, boxes)
        add_subject(rng, room, (cam_x, cam_z), yaw, boxes)
        boxes[:] = [replace(box, material=photo_material(rng, (0.3, 1.5)))
                    if box.material.emission == 0 and rng.random() < PHOTO_PROBABILITY
                    else box for box in boxes]
    lamp = (rng.uniform(-width / 4, width / 4), height - 0.05,
            rng.uniform(length * 0.3, length * 0.7))
    # An LED lamp emits no NIR, an incandescent one plenty.
    boxes.append(Box((lamp[0], height - 0.04, lamp[2]), (0.2, 0.04, 0.2),
                     Material('plaster', (128, 128), emission=6.0,
                              emission_nir=rng.uniform(0, 4))))
    warmth = rng.uniform(0.0, 0.3)
    power = rng.uniform(4.0, 9.0)
    ambient = rng.uniform(0.12, 0.3)
    if variety:    # dim to bright rooms, warm to cool lamps
        warmth, power, ambient = rng.uniform(-0.2, 0.5), rng.uniform(2.0, 14.0), \
            rng.uniform(0.04, 0.45)
    lighting = Lighting(
        sun_direction=(0.0, 1.0, 0.0), sun_rgb=(0.0, 0.0, 0.0),
        ambient_rgb=tuple(float(c) for c in ambient * np.array([1, 1, 1.05])),
        nir_sun=0.0, nir_ambient=float(rng.uniform(0.02, 0.12)),
        nir_illuminator=float(rng.uniform(1.0, 3.0)),
        lamp_position=lamp, lamp_rgb=tuple(float(c) for c in power * np.array(
            [1.0, 1.0 - 0.3 * warmth, 1.0 - 0.6 * warmth])))
    scene = Scene('indoor', boxes, lighting, room=room)
    scene.ground = build_ground_shading(scene, (-width / 2, width / 2, 0.0, length), 0.05, 0.15)
    return scene, Trajectory(start, yaw, pitch, roll, speed=0.0, yaw_rate=0.0)


def _clear_of_path(path: np.ndarray, x: float, z: float, half_x: float, half_z: float,
                   clearance: float) -> bool:
    """True when the rectangle centred at (x, z) stays ``clearance`` away from the path."""
    for t in np.linspace(0, 1, 6):
        px, pz = path[0] + t * (path[1] - path[0])
        dx = max(abs(px - x) - half_x, 0.0)
        dz = max(abs(pz - z) - half_z, 0.0)
        if np.hypot(dx, dz) < clearance:
            return False
    return True


def _place_furniture(rng, room: Room, path, boxes, footprints) -> None:
    kind = rng.choice(['table', 'cabinet', 'sofa', 'bed', 'shelf', 'plant', 'chair', 'rug'])
    dims = {'table': (rng.uniform(0.5, 1.0), 0.375, rng.uniform(0.4, 0.8)),
            'cabinet': (rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0), rng.uniform(0.25, 0.4)),
            'sofa': (rng.uniform(0.8, 1.2), 0.45, rng.uniform(0.4, 0.5)),
            'bed': (rng.uniform(0.8, 1.0), 0.3, rng.uniform(1.0, 1.1)),
            'shelf': (rng.uniform(0.4, 0.9), rng.uniform(0.8, 1.1), 0.2),
            'plant': (0.25, 0.5, 0.25), 'chair': (0.23, 0.45, 0.23),
            'rug': (rng.uniform(0.7, 1.4), 0.006, rng.uniform(0.5, 1.0))}[kind]
    lo, hi = room.lower, room.upper
    against_wall = kind in ('cabinet', 'shelf', 'sofa', 'bed')
    for _ in range(12):
        hx, hy, hz = dims
        yaw = 0.0 if against_wall else float(rng.uniform(-0.6, 0.6))
        if against_wall:    # back against the far wall or a side wall
            side = rng.integers(3)
            if side != 0:
                hx, hz = hz, hx
            x_range = ((lo[0] + hx, hi[0] - hx) if side == 0 else
                       (lo[0] + hx + 0.01,) * 2 if side == 1 else (hi[0] - hx - 0.01,) * 2)
            z_range = (hi[2] - hz - 0.01,) * 2 if side == 0 else (lo[2] + 1.5, hi[2] - hz)
        else:
            reach = np.hypot(hx, hz)     # any yaw stays inside this radius
            x_range = (lo[0] + reach + 0.1, hi[0] - reach - 0.1)
            z_range = (lo[2] + 1.2, hi[2] - reach - 0.1)
        if x_range[0] > x_range[1] or z_range[0] > z_range[1]:
            continue                     # does not fit this room that way
        x, z = rng.uniform(*x_range), rng.uniform(*z_range)
        ex, ez = (hx, hz) if yaw == 0.0 else (np.hypot(hx, hz),) * 2
        if not _clear_of_path(path, x, z, ex, ez, 0.9 + hy * 0.3):
            continue
        if kind != 'rug' and any(abs(x - fx) < ex + fex and abs(z - fz) < ez + fez
                                 for fx, fz, fex, fez in footprints):
            continue
        footprints.append((x, z, ex, ez))
        boxes.extend(_furniture_boxes(rng, kind, x, z, hx, hy, hz, yaw))
        return


def _furniture_boxes(rng, kind, x, z, hx, hy, hz, yaw) -> list[Box]:
    wood = _material(rng, 'wood', 1.2, tint=_colour(rng, 0.4, 1.0, (0, 0.3)), nir_gain=1.0)
    painted = _material(rng, 'car_paint', 1.0)
    fabric = _material(rng, 'fabric', 0.3)
    if kind == 'table':
        top = 0.02
        boxes = [Box((x, 2 * hy - top, z), (hx, top, hz), wood, yaw)]
        c, s = np.cos(yaw), np.sin(yaw)
        for sx in (-1, 1):
            for sz in (-1, 1):
                lx, lz = sx * (hx - 0.05), sz * (hz - 0.05)
                boxes.append(Box((x + c * lx + s * lz, hy - top, z - s * lx + c * lz),
                                 (0.025, hy - top, 0.025), wood, yaw))
        return boxes
    if kind == 'sofa':
        return [Box((x, hy / 2 + 0.05, z), (hx, hy / 2 + 0.05, hz), fabric, yaw),
                Box((x, 0.55, z + hz * 0.8), (hx, 0.3, hz * 0.25), fabric, yaw)]
    if kind == 'bed':
        sheet = _material(rng, 'fabric', 0.3, tint=_colour(rng, 0.6, 1.0, (0, 0.3)))
        return [Box((x, hy / 2, z), (hx, hy / 2, hz), wood, yaw),
                Box((x, hy + 0.1, z), (hx - 0.02, 0.1, hz - 0.02), sheet, yaw)]
    if kind == 'plant':
        pot = _material(rng, 'concrete', 1.0, tint=_colour(rng, 0.3, 0.9))
        leaves = _material(rng, 'foliage', 0.5, tint=(1.0, 1.0, 1.0), nir_gain=1.0)
        return [Box((x, 0.2, z), (0.18, 0.2, 0.18), pot, yaw),
                Box((x, 0.4 + hy, z), (hx, hy, hz), leaves, yaw)]
    if kind == 'chair':
        return [Box((x, hy, z), (hx, 0.03, hx), wood, yaw),
                Box((x, hy / 2, z), (hx * 0.8, hy / 2, hx * 0.8), wood, yaw),
                Box((x, hy + 0.25, z + hx * 0.9), (hx, 0.25, 0.03), wood, yaw)]
    if kind == 'rug':
        return [Box((x, hy, z), (hx, hy, hz), fabric, yaw)]
    return [Box((x, hy, z), (hx, hy, hz), wood if rng.random() < 0.6 else painted, yaw)]


def _decorate_walls(rng, room: Room, boxes: list[Box]) -> None:
    """Pictures, a door and a bright window on the walls (thin boxes)."""
    lo, hi = room.lower, room.upper
    for _ in range(rng.integers(0, 4)):
        w, h = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5)
        y = rng.uniform(1.3, min(2.0, hi[1] - h - 0.1))
        if rng.random() < 0.5:
            boxes.append(Box((rng.uniform(lo[0] + w + 0.1, hi[0] - w - 0.1), y, hi[2] - 0.01),
                             (w, h, 0.01), _material(rng, 'painting', 0.8)))
        else:
            x = lo[0] + 0.01 if rng.random() < 0.5 else hi[0] - 0.01
            boxes.append(Box((x, y, rng.uniform(lo[2] + 1.5, hi[2] - w - 0.1)), (0.01, h, w),
                             _material(rng, 'painting', 0.8)))
    if rng.random() < 0.7:   # a window onto the bright outside, on the far wall
        w, h = rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.7)
        daylight = Material('plaster', (64, 64), tint=(0.85, 0.93, 1.0),
                            emission=rng.uniform(3, 6), emission_nir=rng.uniform(2, 6))
        boxes.append(Box((rng.uniform(lo[0] + w + 0.1, hi[0] - w - 0.1), rng.uniform(1.2, 1.6),
                          hi[2] - 0.005), (w, h, 0.006), daylight))
    if rng.random() < 0.6:
        door = _material(rng, 'wood', 1.2, tint=_colour(rng, 0.3, 1.0, (0, 0.3)), nir_gain=1.0)
        x = lo[0] + 0.015 if rng.random() < 0.5 else hi[0] - 0.015
        boxes.append(Box((x, 1.0, rng.uniform(lo[2] + 2.0, hi[2] - 0.6)), (0.015, 1.0, 0.45),
                         door))


def photo_material(rng, tile_metres: tuple[float, float]) -> Material:
    """A surface wearing one of the photographs, one tile ``tile_metres`` wide (drawn)."""
    name = PHOTO_TEXTURES[rng.integers(len(PHOTO_TEXTURES))]
    return _material(rng, name, float(rng.uniform(*tile_metres)),
                     tint=_colour(rng, 0.5, 1.0, (0, 0.5)))


# Three square prisms turned by 0, 30 and 60 degrees: their union's outline lies between
# h / cos 30 deg and h sqrt 2 from the axis (h: half width); this h puts it within 10 % of
# the radius asked for.
COLUMN_HALF_WIDTH = 1.0 / np.sqrt(np.sqrt(2.0) / np.cos(np.pi / 6))


def faceted_column(center, radius: float, half_height: float, material: Material
                   ) -> list[Box]:
    """A curved (cylindrical) surface of about ``radius``: three square prisms turned by
    30 degrees each (COLUMN_HALF_WIDTH)."""
    half = radius * COLUMN_HALF_WIDTH
    return [Box(tuple(center), (half, half_height, half), material, float(k * np.pi / 6))
            for k in range(3)]


def faceted_ball(center, radius: float, material: Material, slices: int = 4) -> list[Box]:
    """A sphere of ``radius`` as ``slices`` stacked faceted columns of its chord radii."""
    boxes = []
    for k in range(slices):
        y0, y1 = -radius + 2 * radius * k / slices, -radius + 2 * radius * (k + 1) / slices
        mid = (y0 + y1) / 2
        boxes += faceted_column((center[0], center[1] + mid, center[2]),
                                np.sqrt(max(radius ** 2 - mid ** 2, 1e-4)), (y1 - y0) / 2,
                                material)
    return boxes


def stepped_ramp(x: float, z: float, yaw: float, length: float, rise: float, half_width: float,
                 material: Material, steps: int = 8) -> list[Box]:
    """A slanted surface rising ``rise`` metres over ``length`` metres along the yaw
    direction, as ``steps`` abutting slabs (a ramp, or a board leant against something)."""
    c, s = np.cos(yaw), np.sin(yaw)
    run = length / steps
    boxes = []
    for k in range(steps):
        along = (k + 0.5) * run
        top = rise * (k + 1) / steps
        boxes.append(Box((x + s * along, top / 2, z + c * along), (half_width, top / 2, run / 2),
                         material, yaw))
    return boxes


def add_clutter(rng, room: Room, camera_xz, boxes: list[Box]) -> None:
    """4-15 objects on the floor: boxes (some stacked or hanging), faceted columns and balls
    (curved), stepped ramps (slanted); none within 0.6 m of the camera."""
    lo, hi = room.lower, room.upper
    for _ in range(rng.integers(4, 16)):
        x = rng.uniform(lo[0] + 0.3, hi[0] - 0.3)
        z = rng.uniform(lo[2] + 0.3, hi[2] - 0.3)
        if np.hypot(x - camera_xz[0], z - camera_xz[1]) < 0.6 + 0.5:
            continue
        material = _material(rng, str(rng.choice(['car_paint', 'wood', 'fabric', 'concrete',
                                                  'painting'])), rng.uniform(0.3, 1.2))
        kind = rng.choice(['box', 'box', 'stack', 'column', 'ball', 'ramp'])
        yaw = float(rng.uniform(-np.pi, np.pi))
        if kind in ('box', 'stack'):
            half = rng.uniform(0.03, 0.35, size=3) * (1, rng.uniform(0.5, 2.5), 1)
            # One in six hangs in the air (lamps, shelves' contents, things on tables).
            lift = rng.uniform(0.3, 1.6) if rng.random() < 1 / 6 else 0.0
            boxes.append(Box((x, lift + half[1], z), tuple(half), material, yaw))
            if kind == 'stack':
                top = rng.uniform(0.3, 0.9, size=3) * half
                boxes.append(Box((x, lift + 2 * half[1] + top[1], z), tuple(top),
                                 photo_material(rng, (0.3, 1.0)), yaw + rng.uniform(-0.5, 0.5)))
        elif kind == 'column':
            radius, half_height = rng.uniform(0.04, 0.3), rng.uniform(0.1, 0.9)
            boxes += faceted_column((x, half_height, z), radius, half_height, material)
        elif kind == 'ball':
            radius = rng.uniform(0.08, 0.4)
            boxes += faceted_ball((x, radius, z), radius, material)
        else:
            boxes += stepped_ramp(x, z, yaw, rng.uniform(0.5, 1.5), rng.uniform(0.1, 0.8),
                                  rng.uniform(0.15, 0.5), material)


def add_occluder(rng, room: Room, camera, yaw: float, boxes: list[Box]) -> None:
    """Something close in front of the camera, partly in view: a pole, a chair-sized block
    or a table edge 0.8-2 m away, off the optical axis (occlusion boundaries)."""
    if rng.random() < 0.35:
        return
    distance, bearing = rng.uniform(0.8, 2.0), yaw + rng.uniform(-0.55, 0.55)
    x = camera[0] + distance * np.sin(bearing)
    z = camera[2] + distance * np.cos(bearing)
    if not (room.lower[0] + 0.2 < x < room.upper[0] - 0.2 and z < room.upper[2] - 0.2):
        return
    kind = rng.choice(['pole', 'block', 'edge'])
    half = {'pole': (rng.uniform(0.02, 0.08), rng.uniform(0.5, 1.2), rng.uniform(0.02, 0.08)),
            'block': (rng.uniform(0.1, 0.3), rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.3)),
            'edge': (rng.uniform(0.3, 0.7), 0.02, rng.uniform(0.2, 0.4))}[kind]
    y = rng.uniform(0.6, 1.1) if kind == 'edge' else half[1]
    if np.hypot(x - camera[0], z - camera[2]) < np.hypot(half[0], half[2]) + 0.4:
        return
    boxes.append(Box((x, y, z), half, photo_material(rng, (0.3, 1.2)),
                     float(rng.uniform(-np.pi, np.pi))))


def add_subject(rng, room: Room, camera_xz, yaw: float, boxes: list[Box]) -> None:
    """In 60 % of the frames, what a photographer or a robot's task frames: a compound object
    (3-8 parts: blocks, columns, balls; 0.3-1.2 m high, up to 2 m wide) on the floor in the
    middle of the view, 1.3-3.5 m away."""
    if rng.random() >= 0.6:
        return
    distance, bearing = rng.uniform(1.3, 3.5), yaw + rng.uniform(-0.2, 0.2)
    half_width = min(rng.uniform(0.25, 1.0), distance - 0.8)
    x = camera_xz[0] + distance * np.sin(bearing)
    z = camera_xz[1] + distance * np.cos(bearing)
    lo, hi = room.lower, room.upper
    if not (lo[0] + half_width < x < hi[0] - half_width and z < hi[2] - half_width):
        return
    height = rng.uniform(0.3, 1.2)
    turn = float(rng.uniform(-np.pi, np.pi))
    c, s = np.cos(turn), np.sin(turn)
    for _ in range(rng.integers(3, 9)):
        along, across = rng.uniform(-1, 1) * half_width, rng.uniform(-0.4, 0.4) * half_width
        px, pz = x + c * along + s * across, z - s * along + c * across
        size = rng.uniform(0.08, 0.45) * height
        bottom = rng.uniform(0.0, 0.6) * height
        material = (photo_material(rng, (0.3, 1.0)) if rng.random() < PHOTO_PROBABILITY else
                    _material(rng, 'car_paint', 1.0, tint=_colour(rng, 0.05, 1.0, (0, 0.9))))
        part = rng.choice(['block', 'column', 'ball'])
        if part == 'block':
            half = (size * rng.uniform(0.5, 2.0), size, size * rng.uniform(0.3, 1.0))
            boxes.append(Box((px, bottom + half[1], pz), half, material,
                             turn + float(rng.uniform(-0.3, 0.3))))
        elif part == 'column':
            boxes += faceted_column((px, bottom + size, pz), size * rng.uniform(0.2, 0.8), size,
                                    material)
        else:
            boxes += faceted_ball((px, bottom + size, pz), size, material)


# ----------------------------------------------------------------------------- outdoor

def build_outdoor(rng: np.random.Generator, travel: float = 0.0
                  ) -> tuple[Scene, Trajectory]:
    """A street canyon; the camera drives along +Z and may move ``travel`` metres."""
    road_half = rng.uniform(3.5, 7.5)
    sidewalk = rng.uniform(2.0, 4.5)
    far_end = travel + rng.uniform(45.0, 72.0)
    lanes = [(0.0, bool(rng.random() < 0.6))]
    if road_half > 5.5:
        lanes += [(-road_half / 2, True), (road_half / 2, True)]
    lanes += [(-road_half + 0.3, False), (road_half - 0.3, False)]
    road = Road(_material(rng, 'asphalt', 4.0, tint=(1, 1, 1), nir_gain=1.0),
                Material('plaster', (64, 64)), tuple(x for x, _ in lanes),
                tuple(d for _, d in lanes))
    boxes: list[Box] = []
    paving = _material(rng, 'paving', 1.2, tint=_colour(rng, 0.6, 1.0, (0, 0.2)), nir_gain=1.0)
    for side in (-1, 1):
        boxes.append(Box((side * (road_half + sidewalk / 2), 0.075, far_end / 2),
                         (sidewalk / 2, 0.075, far_end / 2 + 25), paving))
        _street_side(rng, side, road_half + sidewalk, far_end, boxes)
        _parked_cars(rng, side, road_half, far_end, boxes)
    # The street ends at a cross facade, which bounds the depth like a LiDAR's range.
    boxes.append(Box((rng.uniform(-5, 5), 0, far_end + 8), (60.0, rng.uniform(8, 30), 8.0),
                     _facade(rng)))
    # Keep >= 1.2 m from the parked cars' flanks (at road_half - 2 m): within the field of
    # view nothing is then nearer than the 1 m a LiDAR sees.
    lane_x = rng.uniform(-1, 1) * max(road_half - 3.2, 0.0)
    for _ in range(rng.integers(0, 3)):   # traffic ahead
        z = rng.uniform(10.0, far_end - 8)
        if travel and z < travel + 10:
            continue
        x = np.clip(lane_x + rng.choice([-1, 0, 1]) * road_half / 2, -road_half + 1.2,
                    road_half - 1.2)
        boxes.extend(_car(rng, x, z, float(rng.uniform(-0.05, 0.05))))

    cam_y = rng.uniform(1.5, 1.8)
    yaw = rng.uniform(-0.12, 0.12) if not travel else rng.uniform(-0.03, 0.03)
    pitch = rng.uniform(-0.08, 0.03)
    roll = rng.uniform(-0.03, 0.03)
    start = CameraPose.from_angles((lane_x, cam_y, 0.0), yaw, pitch, roll)
    elevation, azimuth = rng.uniform(0.45, 1.25), rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                    np.cos(elevation) * np.cos(azimuth)])
    overcast = rng.random() < 0.3
    sun_power = rng.uniform(0.3, 0.8) if overcast else rng.uniform(2.5, 3.5)
    sky_power = rng.uniform(0.8, 1.2) if overcast else rng.uniform(0.35, 0.6)
    lighting = Lighting(
        sun_direction=tuple(sun), sun_rgb=tuple(sun_power * np.array([1.0, 0.95, 0.85])),
        ambient_rgb=tuple(sky_power * np.array([0.85, 0.95, 1.15])),
        nir_sun=sun_power * rng.uniform(0.9, 1.2), nir_ambient=sky_power * 0.35,
        nir_illuminator=float(rng.uniform(0.0, 2.0)),
        sky_horizon_rgb=(0.8, 0.85, 0.9) if overcast else (0.7, 0.8, 0.92),
        sky_zenith_rgb=(0.7, 0.74, 0.8) if overcast else (0.2, 0.38, 0.8),
        sky_nir=0.1 if overcast else 0.05,
        cloud_offset=(float(rng.uniform(0, 256)), float(rng.uniform(0, 256))))
    scene = Scene('outdoor', boxes, lighting, road=road)
    scene.ground = build_ground_shading(scene, (-45.0, 45.0, -30.0, far_end + 20), 0.4, 0.35)
    return scene, Trajectory(start, yaw, pitch, roll, speed=0.0, yaw_rate=0.0)


def _facade(rng) -> Material:
    if rng.random() < 0.3:
        return _material(rng, 'brick', 0.9, tint=_colour(rng, 0.6, 1.0, (0, 0.2)), nir_gain=1.0)
    bay = (rng.uniform(2.4, 3.6), rng.uniform(2.8, 3.4))
    return _material(rng, 'facade', bay, tint=_colour(rng, 0.35, 1.0, (0, 0.45)))


def _street_side(rng, side: int, inner: float, far_end: float, boxes: list[Box]) -> None:
    """Buildings, trees and poles on one side of the street (side = -1 left, +1 right)."""
    z = -25.0
    while z < far_end:
        length = rng.uniform(8.0, 25.0)
        if rng.random() < 0.15:     # a gap with a hedge
            hedge = _material(rng, 'foliage', 1.0, tint=(1, 1, 1), nir_gain=1.0)
            boxes.append(Box((side * (inner + 1.0), 0.6, z + length / 2), (0.6, 0.6, length / 2),
                             hedge))
            inner_gap = inner + rng.uniform(6, 15)
            boxes.append(Box((side * (inner_gap + 6), 0, z + length / 2),
                             (6.0, rng.uniform(6, 20), length / 2), _facade(rng)))
        else:
            setback = rng.uniform(0.0, 3.0)
            boxes.append(Box((side * (inner + setback + 6.0), 0, z + length / 2),
                             (6.0, rng.uniform(6.0, 24.0), length / 2 - 0.05), _facade(rng)))
        z += length
    bark = _material(rng, 'bark', 1.0, tint=(1, 1, 1), nir_gain=1.0)
    for _ in range(rng.integers(0, 6)):
        tz, tx = rng.uniform(3.0, far_end - 5), side * (inner - rng.uniform(0.6, 1.2))
        canopy = rng.uniform(1.2, 2.2)
        leaves = _material(rng, 'foliage', 1.5, tint=_colour(rng, 0.8, 1.2, (0, 0.2)),
                           nir_gain=1.0)
        boxes.append(Box((tx, 1.5, tz), (0.15, 1.5, 0.15), bark))
        boxes.append(Box((tx, 3.0 + canopy * 0.8, tz), (canopy, canopy * 0.8, canopy), leaves,
                         float(rng.uniform(0, 1.5))))
    metal = _material(rng, 'concrete', 1.0, tint=_colour(rng, 0.3, 0.8, (0, 0.2)))
    for _ in range(rng.integers(0, 4)):
        boxes.append(Box((side * (inner - rng.uniform(0.3, 0.6)), 2.5, rng.uniform(3, far_end)),
                         (0.07, 2.5, 0.07), metal))


def _parked_cars(rng, side: int, road_half: float, far_end: float, boxes: list[Box]) -> None:
    z = rng.uniform(2.0, 8.0)
    while z < far_end - 5:
        if rng.random() < 0.5:
            boxes.extend(_car(rng, side * (road_half - 1.1), z, float(rng.uniform(-0.04, 0.04))))
        z += rng.uniform(5.5, 9.0)


def _car(rng, x: float, z: float, yaw: float) -> list[Box]:
    length, width = rng.uniform(1.9, 2.4), rng.uniform(0.85, 0.95)   # half sizes
    body_top = rng.uniform(0.95, 1.15)
    paint = _material(rng, 'car_paint', 1.0, tint=_colour(rng, 0.05, 1.0, (0, 0.9)))
    glass = Material('glass', (128.0, 128.0))
    rubber = Material('asphalt', (128.0, 128.0), tint=(0.3, 0.3, 0.3), nir_gain=0.4)
    cabin_h = rng.uniform(0.22, 0.3)
    c, s = np.cos(yaw), np.sin(yaw)
    shift = rng.uniform(-0.25, 0.1) * length
    return [Box((x, 0.17, z), (width - 0.08, 0.17, length - 0.35), rubber, yaw),
            Box((x, (body_top + 0.3) / 2, z), (width, (body_top - 0.3) / 2, length), paint, yaw),
            Box((x + s * shift, body_top + cabin_h, z + c * shift),
                (width - 0.08, cabin_h, length * 0.5), glass, yaw)]


def build_scene(kind: str, rng: np.random.Generator, travel: float = 0.0,
                variety: bool = False) -> tuple[Scene, Trajectory]:
    """``variety`` (indoor only for now): the issue-21 world, module docstring."""
    if kind == 'indoor':
        return build_indoor(rng, travel, variety)
    if kind == 'outdoor':
        return build_outdoor(rng, travel)
    raise ValueError(f"scene kind must be 'indoor' or 'outdoor', got {kind!r}")
