"""Shading of ray-cast synthetic views: RGB and NIR radiance (deferred, whole-image numpy).

Lambertian surfaces lit by a sun (outdoor) or a ceiling lamp (indoor), with soft shadows
cast onto the ground, a hemispherical sky/ambient term with contact occlusion under
objects, and procedural textures (synthetic_textures) filtered with mip-maps. The NIR image
has its own reflectances and its own illumination: an active illuminator at the camera
(cos / r^2 falloff), the sun's NIR outdoors, little ambient NIR indoors and a dark sky.

Shading is deferred: every surface's parameters sit in small tables indexed by the id
buffer, so each image costs a fixed number of whole-image array operations however many
objects the scene has.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.synthetic_geometry import (FIRST_BOX, ROAD, ROOM_NORMALS, SKY,
                                                  CameraPose, GroundShading, Lighting,
                                                  Material, RayHits, Road, Scene, box_table)
from training.datasets.synthetic_textures import texture_atlas

LANE_PAINT_RGB, LANE_PAINT_NIR = 0.75, 0.7    # white road paint is bright in NIR too


@dataclass
class SurfaceTables:
    """Per-surface parameters as 1-D arrays, row = surface id + 1 (row 0 is the sky), and
    per-box geometry, row = box index."""
    texture: np.ndarray         # atlas tile index
    scale_u: np.ndarray         # texels per metre along u, v
    scale_v: np.ndarray
    offset_u: np.ndarray        # metres
    offset_v: np.ndarray
    tint: list                  # 3 arrays: linear R, G, B of the tintable part
    nir_gain: np.ndarray
    emission: np.ndarray        # RGB emission (0: a lit surface)
    emission_nir: np.ndarray
    box: list                   # 8 arrays: centre x, y, z, half x, y, z, cos yaw, sin yaw


def surface_tables(scene: Scene) -> SurfaceTables:
    """The scene's tables, built on first use (and again if boxes were added since)."""
    if scene.tables is not None and len(scene.tables.box[0]) == len(scene.boxes):
        return scene.tables
    atlas = texture_atlas()
    blank = Material('plaster', (1.0, 1.0))
    materials = [blank] * (FIRST_BOX + 1)
    if scene.room is not None:
        materials[1:7] = scene.room.materials
    if scene.road is not None:
        materials[ROAD + 1] = scene.road.material
    materials += [box.material for box in scene.boxes]

    def column(values):
        return np.ascontiguousarray(values, dtype=np.float32)

    _, box_params = box_table(scene)
    scene.tables = SurfaceTables(
        texture=np.array([atlas.index[m.texture] for m in materials], np.intp),
        scale_u=column([m.texels_per_metre[0] for m in materials]),
        scale_v=column([m.texels_per_metre[1] for m in materials]),
        offset_u=column([m.uv_offset[0] for m in materials]),
        offset_v=column([m.uv_offset[1] for m in materials]),
        tint=[column([m.tint[c] for m in materials]) for c in range(3)],
        nir_gain=column([m.nir_gain for m in materials]),
        emission=column([m.emission for m in materials]),
        emission_nir=column([m.emission_nir for m in materials]),
        box=list(box_params))
    return scene.tables


def shade(scene: Scene, camera: CameraIntrinsics, pose: CameraPose, hits: RayHits,
          with_nir: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Linear radiance: RGB (H, W, 3) float32 and, with_nir, NIR (H, W) float32."""
    height, width = hits.depth.shape
    ids = hits.ids.ravel()
    rgb = np.empty((3, ids.size), np.float32)
    nir = np.empty(ids.size, np.float32) if with_nir else None
    sky = np.flatnonzero(ids == SKY)
    if sky.size:
        sky_rgb, sky_nir = shade_sky(scene.lighting, hits.dirs.reshape(3, -1)[:, sky])
        rgb[:, sky] = sky_rgb
        if with_nir:
            nir[sky] = sky_nir
    if sky.size < ids.size:
        solid = slice(None) if sky.size == 0 else np.flatnonzero(ids != SKY)
        surface_rgb, surface_nir = _shade_surfaces(scene, camera, pose, hits, solid, with_nir)
        for c in range(3):
            rgb[c, solid] = surface_rgb[c]
        if with_nir:
            nir[solid] = surface_nir
    image = cv2.merge([channel.reshape(height, width) for channel in rgb])
    return image, (nir.reshape(height, width) if with_nir else None)


def _subset(mask: np.ndarray):
    """Index of the True entries, or a no-copy slice when all are."""
    return slice(None) if mask.all() else np.flatnonzero(mask)


def _shade_surfaces(scene: Scene, camera: CameraIntrinsics, pose: CameraPose, hits: RayHits,
                    solid, with_nir: bool):
    """(3, n) RGB and (n,) NIR radiance of the pixels ``solid`` (all of which hit a surface).

    Channel-first 1-D arrays throughout: numpy is several times faster on them than on
    strided (n, 3) columns or row gathers.
    """
    tables = surface_tables(scene)
    sid = hits.ids.ravel()[solid]
    row = sid.astype(np.intp) + 1
    t = hits.depth.ravel()[solid]
    d = [hits.dirs[a].ravel()[solid] for a in range(3)]
    p = [np.float32(o) + t * da for o, da in zip(pose.position, d)]
    n = t.size
    normal = [np.zeros(n, np.float32) for _ in range(3)]
    u = np.empty(n, np.float32)
    v = np.empty(n, np.float32)

    room = sid < 6
    if room.any():
        idx = _subset(room)
        face = sid[idx]
        for a in range(3):
            normal[a][idx] = ROOM_NORMALS[:, a].take(face)
        px, py, pz = (c[idx] for c in p)
        along_x, horizontal = face < 2, (face == 2) | (face == 3)
        # Walls: (horizontal, down) so that textures stand upright; floor/ceiling: (X, Z).
        u[idx] = px + along_x * (pz - px)
        v[idx] = -py + horizontal * (pz + py)
    road = sid == ROAD
    if road.any():
        idx = _subset(road)
        normal[1][idx] = 1.0
        u[idx], v[idx] = p[0][idx], p[2][idx]
    boxes = sid >= FIRST_BOX
    if boxes.any():
        idx = _subset(boxes)
        box_normal, u[idx], v[idx] = _box_surfaces(tables, sid[idx] - FIRST_BOX,
                                                   [c[idx] for c in p])
        for a in range(3):
            normal[a][idx] = box_normal[a]

    # Texture look-up with a footprint-selected mip level (pixel size on the surface, in
    # metres = distance / f, stretched at grazing angles).
    ray_len = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    cos_view = np.abs(normal[0] * d[0] + normal[1] * d[1] + normal[2] * d[2]) / ray_len
    footprint = t * ray_len / (np.float32(camera.fx) * np.maximum(cos_view, np.float32(0.2)))
    scale_u, scale_v = tables.scale_u.take(row), tables.scale_v.take(row)
    *texel_rgb, texel_nir, weight = texture_atlas().sample(
        tables.texture.take(row), (u + tables.offset_u.take(row)) * scale_u,
        (v + tables.offset_v.take(row)) * scale_v, footprint * np.maximum(scale_u, scale_v))
    keep = 1 - weight
    albedo = [texel_rgb[c] * (keep + weight * tables.tint[c].take(row)) for c in range(3)]
    albedo_nir = texel_nir * (keep + weight * tables.nir_gain.take(row))
    if road.any():
        paint = np.zeros(n, np.float32)
        paint[_subset(road)] = _lane_markings(scene.road, [c[road] for c in (p[0], p[2])])
        for c in range(3):
            albedo[c] += paint * (LANE_PAINT_RGB - albedo[c])
        albedo_nir += paint * (LANE_PAINT_NIR - albedo_nir)

    light = scene.lighting
    occlusion = visibility = None
    if scene.ground is not None:
        on_ground = (normal[1] > 0.99) & (np.abs(p[1]) < 0.02)
        if on_ground.any():
            idx = np.flatnonzero(on_ground)
            visibility, occlusion = np.ones(n, np.float32), np.ones(n, np.float32)
            visibility[idx], occlusion[idx] = scene.ground.lookup(p[0][idx], p[2][idx])
    sky_term = 0.6 + 0.4 * normal[1]
    if occlusion is not None:
        sky_term *= occlusion
    if light.lamp_position is None:
        s = [np.float32(c) for c in light.sun_direction]
        lambert = np.maximum(s[0] * normal[0] + s[1] * normal[1] + s[2] * normal[2], 0)
        source_rgb = light.sun_rgb
    else:
        to_lamp = [np.float32(lamp) - pc for lamp, pc in zip(light.lamp_position, p)]
        dist2 = np.maximum(to_lamp[0] ** 2 + to_lamp[1] ** 2 + to_lamp[2] ** 2,
                           np.float32(0.25))
        lambert = np.maximum(to_lamp[0] * normal[0] + to_lamp[1] * normal[1]
                             + to_lamp[2] * normal[2], 0) / (dist2 * np.sqrt(dist2))
        source_rgb = light.lamp_rgb
    if visibility is not None:
        lambert *= visibility
    radiance = [albedo[c] * (np.float32(light.ambient_rgb[c]) * sky_term
                             + np.float32(source_rgb[c]) * lambert) for c in range(3)]
    emission = tables.emission.take(row)
    glowing = np.flatnonzero(emission > 0)
    for c in range(3):   # lamps and windows: their own radiance, no lighting
        radiance[c][glowing] = albedo[c][glowing] * emission[glowing]
    if not with_nir:
        return radiance, None
    # NIR: ambient, sun (outdoors) and the camera's own illuminator, cos / r^2.
    r2 = t * t * ray_len * ray_len
    e_nir = (np.float32(light.nir_ambient) * sky_term
             + np.float32(light.nir_illuminator) * cos_view / np.maximum(r2, np.float32(0.09)))
    if light.lamp_position is None:
        e_nir += np.float32(light.nir_sun) * lambert
    nir = albedo_nir * e_nir
    nir[glowing] = albedo_nir[glowing] * tables.emission_nir.take(row[glowing])
    return radiance, nir


def _box_surfaces(tables: SurfaceTables, box: np.ndarray, p: list[np.ndarray]):
    """World normals (3 arrays) and face (u, v) coordinates in metres of points on boxes."""
    cx, cy, cz, hx, hy, hz, cos, sin = (column.take(box) for column in tables.box)
    rx, ry, rz = p[0] - cx, p[1] - cy, p[2] - cz
    lx = cos * rx - sin * rz     # into the box frame (rotation about Y by -yaw)
    lz = sin * rx + cos * rz
    ax, ay, az = np.abs(lx) / hx, np.abs(ry) / hy, np.abs(lz) / hz
    face_x = (ax >= ay) & (ax >= az)
    face_y = ~face_x & (ay >= az)
    face_z = ~(face_x | face_y)
    nx, nz = np.sign(lx) * face_x, np.sign(lz) * face_z
    normal = [cos * nx + sin * nz, np.sign(ry) * face_y, cos * nz - sin * nx]
    # Vertical faces: (horizontal, down from the top) so that textures stand upright.
    u = lx + hx + face_x * (lz + hz - lx - hx)
    v = hy - ry + face_y * (lz + hz - hy + ry)
    return normal, u, v


def _lane_markings(road: Road, xz: list[np.ndarray]) -> np.ndarray:
    """Per-pixel weight of lane paint (0 or 1) at road points (x, z)."""
    x, z = xz
    paint = np.zeros(x.size, dtype=np.float32)
    dash = np.mod(z, np.float32(road.dash_period)) < road.dash_length
    for x_line, dashed in zip(road.lane_lines, road.dashed):
        on = np.abs(x - np.float32(x_line)) < road.line_width / 2
        if dashed:
            on &= dash
        paint[on] = 1.0
    return paint


def shade_sky(light: Lighting, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky radiance along directions d (3, n) -> RGB (3, n), NIR (n,): horizon-to-zenith
    gradient, a glow around the sun and clouds."""
    norm = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    up = np.clip(d[1] / norm, 0.0, 1.0)
    blend = np.sqrt(up)
    sun = [np.float32(c) for c in light.sun_direction]
    glow = 2.0 * np.maximum((sun[0] * d[0] + sun[1] * d[1] + sun[2] * d[2]) / norm, 0) ** 64
    # Clouds on a plane 1 km up, read from a periodic cover texture (one tile per 2 km).
    atlas = texture_atlas()
    height = np.maximum(d[1], 0.03 * norm)
    scale = np.float32(1000.0 / 2000.0 * 256)
    cu = d[0] / height * scale + np.float32(light.cloud_offset[0])
    cv = d[2] / height * scale + np.float32(light.cloud_offset[1])
    footprint = np.float32(4.0) / np.maximum(up, np.float32(0.05))
    cover = atlas.sample(atlas.index['clouds'], cu, cv, footprint)[0]
    cover = np.clip(cover * 1.6, 0, 1) * np.clip(up * 8, 0, 1)
    clear = 1 - cover
    rgb = np.stack([(np.float32(hz) + (np.float32(zn) - np.float32(hz)) * blend + glow) * clear
                    + np.float32(0.95) * cover
                    for hz, zn in zip(light.sky_horizon_rgb, light.sky_zenith_rgb)])
    nir = np.float32(light.sky_nir) * clear + np.float32(0.35) * cover
    return rgb, nir


# ----------------------------------------------------------------------------- ground shadows

def build_ground_shading(scene: Scene, extent: tuple[float, float, float, float],
                         cell: float, penumbra: float) -> GroundShading:
    """Soft shadows of the boxes on the ground (from the sun or the lamp) and contact
    occlusion under them, rasterised once per scene into (Z, X) grids.

    extent = (x_min, x_max, z_min, z_max) in metres; penumbra = blur sigma in metres.
    """
    x0, x1, z0, z1 = extent
    nx, nz = int(np.ceil((x1 - x0) / cell)), int(np.ceil((z1 - z0) / cell))
    shadow = np.zeros((nz, nx), np.float32)
    contact = np.zeros((nz, nx), np.float32)
    light = scene.lighting
    all_corners, _ = box_table(scene)
    for corners in all_corners.copy():
        corners[:, 1] = np.maximum(corners[:, 1], 0.0)   # boxes may reach below the ground
        if light.lamp_position is None:
            sun = np.asarray(light.sun_direction)
            ground = corners - np.outer(corners[:, 1] / max(sun[1], 0.05), sun)
        else:
            lamp = np.asarray(light.lamp_position)
            if np.any(corners[:, 1] >= lamp[1] - 0.05):
                continue
            ground = lamp + (corners - lamp) * (lamp[1] / (lamp[1] - corners[:, 1]))[:, None]
        _fill(shadow, ground, x0, z0, cell)
        if corners[:, 1].min() < 0.5:    # standing on (or just above) the ground
            _fill(contact, corners, x0, z0, cell)
    sigma = max(penumbra / cell, 0.5)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
    contact = cv2.GaussianBlur(contact, (0, 0), 2 * sigma)
    grid = np.dstack([1.0 - 0.85 * np.clip(shadow, 0, 1), 1.0 - 0.6 * np.clip(contact, 0, 1)])
    return GroundShading((x0, z0), cell, np.ascontiguousarray(grid, dtype=np.float32))


def _fill(grid: np.ndarray, points: np.ndarray, x0: float, z0: float, cell: float) -> None:
    pts = np.stack([(points[:, 0] - x0) / cell, (points[:, 2] - z0) / cell], axis=1)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    cv2.fillConvexPoly(grid, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
