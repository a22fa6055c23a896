"""Pinhole camera geometry: intrinsics, resizing, depth <-> disparity, back-projection.

Conventions (REP 103/104, sensor_msgs/CameraInfo): optical frame x right, y down, z forward;
pixel (u, v) has its centre at integer coordinates; K = [fx 0 cx; 0 fy cy; 0 0 1];
P[0, 3] = -fx' * B for the right camera of a rectified pair (B = baseline in metres).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


class CameraModelError(ValueError):
    """Intrinsics that cannot describe a camera (e.g. zero focal length)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    # Projection-matrix translation P[0, 3] (= -fx * baseline on a right camera), else 0.
    tx: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.fx) and np.isfinite(self.fy)) or self.fx <= 0 or self.fy <= 0:
            raise CameraModelError(f'focal length must be positive, got fx={self.fx}, '
                                   f'fy={self.fy}')
        if self.width <= 0 or self.height <= 0:
            raise CameraModelError(f'camera size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_k(cls, k, width: int, height: int, p=None) -> 'CameraIntrinsics':
        """From a row-major 3x3 K (and optional 3x4 P, whose fx/cx/Tx take precedence).

        After rectification P holds the intrinsics of the rectified image, which is what
        image_rect topics carry, so P is preferred when it is set.
        """
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        fx, fy, cx, cy, tx = k[0], k[4], k[2], k[5], 0.0
        if p is not None:
            p = np.asarray(p, dtype=np.float64).reshape(-1)
            if p.size == 12 and p[0] > 0 and p[5] > 0:
                fx, fy, cx, cy, tx = p[0], p[5], p[2], p[6], p[3]
        return cls(int(width), int(height), float(fx), float(fy), float(cx), float(cy),
                   float(tx))

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def p(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx, self.tx], [0.0, self.fy, self.cy, 0.0],
                         [0.0, 0.0, 1.0, 0.0]])

    @property
    def baseline(self) -> float:
        """Stereo baseline in metres from P[0, 3] = -fx * B (0 for a left/mono camera)."""
        return -self.tx / self.fx

    def scaled(self, width: int, height: int) -> 'CameraIntrinsics':
        """Intrinsics of the same camera after resizing the image to width x height.

        Pixel centres map as u' + 0.5 = (u + 0.5) * s, which is what cv2.resize does, so
        cx' = (cx + 0.5) * sx - 0.5 (not plain cx * sx, which is off by half a pixel).
        The baseline is a physical length, so Tx = -fx * B scales with fx.
        """
        sx, sy = width / self.width, height / self.height
        return replace(self, width=int(width), height=int(height), fx=self.fx * sx,
                       fy=self.fy * sy, cx=(self.cx + 0.5) * sx - 0.5,
                       cy=(self.cy + 0.5) * sy - 0.5, tx=self.tx * sx)


def disparity_to_depth(disparity_px: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Metric depth Z = fx * B / d for disparity d in pixels; d <= 0 or non-finite gives NaN."""
    disparity_px = np.asarray(disparity_px, dtype=np.float32)
    valid = np.isfinite(disparity_px) & (disparity_px > 0)
    depth = np.full(disparity_px.shape, np.nan, dtype=np.float32)
    depth[valid] = np.float32(fx * baseline) / disparity_px[valid]
    return depth


def depth_to_disparity(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Disparity in pixels d = fx * B / Z; invalid depth gives NaN."""
    return disparity_to_depth(depth, fx, baseline)  # the relation is its own inverse


def pixel_rays(camera: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (x/z, y/z) of the optical ray through each pixel centre, shape (H, W)."""
    u = (np.arange(camera.width, dtype=np.float32) - np.float32(camera.cx)) / np.float32(
        camera.fx)
    v = (np.arange(camera.height, dtype=np.float32) - np.float32(camera.cy)) / np.float32(
        camera.fy)
    return np.broadcast_to(u[None, :], (camera.height, camera.width)), \
        np.broadcast_to(v[:, None], (camera.height, camera.width))


def backproject(depth: np.ndarray, camera: CameraIntrinsics,
                rays: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(H, W) depth in metres -> (H, W, 3) points in the optical frame; NaN stays NaN."""
    if depth.shape != (camera.height, camera.width):
        raise CameraModelError(f'depth {depth.shape[::-1]} does not match camera '
                               f'{camera.width}x{camera.height}')
    ray_x, ray_y = rays if rays is not None else pixel_rays(camera)
    points = np.empty(depth.shape + (3,), dtype=np.float32)
    np.multiply(ray_x, depth, out=points[:, :, 0])
    np.multiply(ray_y, depth, out=points[:, :, 1])
    points[:, :, 2] = depth
    return points


def project_points(points: np.ndarray, camera: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) optical-frame points -> integer pixel (u, v) and depth z for points in view.

    Points behind the camera, non-finite or outside the image are removed.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    points = points[np.all(np.isfinite(points), axis=1) & (points[:, 2] > 0)]
    z = points[:, 2]
    u = np.rint(camera.fx * points[:, 0] / z + camera.cx).astype(np.int64)
    v = np.rint(camera.fy * points[:, 1] / z + camera.cy).astype(np.int64)
    inside = (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    u, v, z = u[inside], v[inside], z[inside]
    return u, v, z


def rasterize_depth(u: np.ndarray, v: np.ndarray, z: np.ndarray, camera: CameraIntrinsics
                    ) -> np.ndarray:
    """Sparse depth image from projected pixels; NaN where no point projects.

    Where several points fall on one pixel the nearest wins (z-buffer), as a sensor sees it.
    """
    depth = np.full(camera.height * camera.width, np.nan, dtype=np.float32)
    order = np.argsort(z, kind='stable')
    flat = (v * camera.width + u)[order]
    first, keep = np.unique(flat, return_index=True)
    depth[first] = z[order][keep]
    return depth.reshape(camera.height, camera.width)
