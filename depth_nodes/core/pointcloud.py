"""Depth images -> XYZRGB point cloud buffers in the PointCloud2 layout (ROS-free).

The layout is the one RViz and PCL expect: x, y, z float32 and rgb as a float32 whose bits
are 0x00RRGGBB, 16 bytes per point, organised (height x width) with NaN for no return.
"""
from __future__ import annotations

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, backproject, pixel_rays

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

    ``stride`` > 1 keeps every stride-th row and column (a lighter cloud for RViz); only
    the kept pixels are back-projected.
    """
    if depth.shape != (camera.height, camera.width):
        backproject(depth, camera, rays)            # raises CameraModelError
    ray_x, ray_y = rays if rays is not None else pixel_rays(camera)
    if stride > 1:
        depth, ray_x, ray_y = (a[::stride, ::stride] for a in (depth, ray_x, ray_y))
        rgb = None if rgb is None else rgb[::stride, ::stride]
    cloud = np.empty(depth.shape + (4,), dtype=np.float32)
    np.multiply(ray_x, depth, out=cloud[:, :, 0])
    np.multiply(ray_y, depth, out=cloud[:, :, 1])
    cloud[:, :, 2] = depth
    if rgb is None:
        cloud[:, :, 3] = np.uint32(0xFFFFFF).view(np.float32)        # white
    else:
        cloud[:, :, 3] = pack_rgb(rgb)
    return cloud
