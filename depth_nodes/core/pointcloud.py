"""Depth images -> XYZRGB point cloud buffers in the PointCloud2 layout (ROS-free).

The layout is the one RViz and PCL expect: x, y, z float32 and rgb as a float32 whose bits
are 0x00RRGGBB, 16 bytes per point, organised (height x width) with NaN for no return.
"""
from __future__ import annotations

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, backproject

# (name, byte offset, PointField datatype FLOAT32 = 7, count)
XYZRGB_FIELDS = (('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('rgb', 12, 7, 1))
XYZRGB_POINT_STEP = 16


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) float32 carrying 0x00RRGGBB in its bits."""
    rgb = rgb.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.astype(np.uint32).view(np.float32)


def depth_to_xyzrgb(depth: np.ndarray, camera: CameraIntrinsics, rgb: np.ndarray | None = None,
                    stride: int = 1, rays=None) -> np.ndarray:
    """(H, W) metres [+ (H, W, 3) uint8] -> (H', W', 4) float32 x, y, z, rgb.

    ``stride`` > 1 keeps every stride-th row and column (a lighter cloud for RViz).
    """
    points = backproject(depth, camera, rays)
    cloud = np.empty(depth.shape + (4,), dtype=np.float32)
    cloud[:, :, :3] = points
    cloud[:, :, 3] = pack_rgb(rgb) if rgb is not None else pack_rgb(
        np.full(depth.shape + (3,), 255, dtype=np.uint8))
    if stride > 1:
        cloud = np.ascontiguousarray(cloud[::stride, ::stride])
    return cloud
