"""Camera images -> network input tensors, as the model spec describes.

Training imports these same functions (training/datasets), so a network sees at run time
exactly the tensor layout and normalisation it was trained with.
"""
from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.core.encodings import ImageFormatError, lookup_encoding
from depth_nodes.core.model_spec import ModelSpec

# ITU-R BT.601 luma, the weights cv2.cvtColor uses for RGB -> gray.
LUMA_RGB = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def image_to_unit_float(image: np.ndarray, encoding: str) -> np.ndarray:
    """Colour or mono pixels as float32 in [0, 1], shape (H, W, C) with C in {1, 3, 4}.

    8-bit divides by 255 and 16-bit by 65535. Channel order is that of the encoding.
    """
    enc = lookup_encoding(encoding)
    if enc.kind == 'depth':
        raise ImageFormatError(f'{encoding} is a depth encoding; this model wants an image',
                               'encoding')
    scale = np.float32(1.0 / np.iinfo(enc.dtype).max)
    out = image.astype(np.float32) * scale
    return out[:, :, None] if out.ndim == 2 else out


def to_model_channels(image: np.ndarray, encoding: str, channels: int,
                      color_order: str) -> np.ndarray:
    """Unit-float (H, W, C) in the encoding's order -> (H, W, channels) in the model's order."""
    if channels == 1:
        if image.shape[2] == 1:
            return image
        rgb = image[:, :, :3] if encoding.startswith('rgb') else image[:, :, 2::-1]
        return (rgb @ LUMA_RGB)[:, :, None]
    if channels != 3:
        raise ImageFormatError(f'models with {channels} image channels are not supported',
                               'channels')
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    is_rgb = encoding.startswith('rgb')
    want_rgb = color_order == 'rgb'
    return image[:, :, :3] if is_rgb == want_rgb else image[:, :, 2::-1]


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize with area averaging when shrinking (no aliasing) and bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std per channel on an (H, W, C) unit-float image."""
    mean = np.asarray(mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(std, dtype=np.float32)
    return (image - mean) * inv_std


def image_to_tensor(image: np.ndarray, encoding: str, spec: ModelSpec) -> np.ndarray:
    """A decoded camera image -> the (1, C, H, W) float32 tensor the model expects.

    Resizing happens on the 8/16-bit image before conversion to float: 4x less memory
    traffic than float data. Training calls this same function, so the rounding matches.
    """
    height, width = spec.input_size
    if height and width and image.shape[:2] != (height, width):
        image = resize_image(image, height, width)
    unit = image_to_unit_float(image, encoding)
    chw = normalize(to_model_channels(unit, encoding, spec.input_channels, spec.color_order),
                    spec.mean[:spec.input_channels], spec.std[:spec.input_channels])
    return np.ascontiguousarray(chw.transpose(2, 0, 1)[None])
