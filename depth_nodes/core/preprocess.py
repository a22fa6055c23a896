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


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize for a network input: area averaging when shrinking (no aliasing), else bilinear.

    cv2's INTER_AREA is fast for integer factors but far slower for fractional ones (e.g.
    640x480 -> 304x228). Shrinking by the integer part with INTER_AREA, then the rest with
    INTER_LINEAR (a factor below 2, where bilinear does not alias) is much cheaper, for a
    result within a grey level of a pure INTER_AREA resize.
    """
    src_h, src_w = image.shape[:2]
    if (src_h, src_w) == (height, width):
        return image
    factor = min(src_h // height, src_w // width)
    if factor >= 2:
        image = cv2.resize(image, (src_w // factor, src_h // factor),
                           interpolation=cv2.INTER_AREA)
    if image.shape[:2] != (height, width):
        shrinking = height * width < image.shape[0] * image.shape[1]
        interp = cv2.INTER_AREA if shrinking and factor < 2 and \
            max(image.shape[0] / height, image.shape[1] / width) >= 1.5 else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interp)
    return image[:, :, None] if image.ndim == 2 else image


def letterbox_box(image_height: int, image_width: int, input_height: int, input_width: int
                  ) -> tuple[int, int, int, int]:
    """Where an image sits in a letterboxed network input: (height, width, top, left) in
    input pixels. The image is scaled by one factor to fit the input and centred; the rest of
    the input is padding."""
    scale = min(input_height / image_height, input_width / image_width)
    height = min(input_height, max(1, round(image_height * scale)))
    width = min(input_width, max(1, round(image_width * scale)))
    return height, width, (input_height - height) // 2, (input_width - width) // 2


def letterbox_image(image: np.ndarray, input_height: int, input_width: int) -> np.ndarray:
    """Resize keeping the aspect ratio (resize_image), then fill the input by repeating the
    edge rows or columns (cv2.BORDER_REPLICATE: a floor runs on below, a wall on above,
    where a constant colour would be an edge the network never saw in training)."""
    height, width, top, left = letterbox_box(image.shape[0], image.shape[1],
                                             input_height, input_width)
    image = resize_image(image, height, width)
    padded = cv2.copyMakeBorder(image, top, input_height - height - top, left,
                                input_width - width - left, cv2.BORDER_REPLICATE)
    return padded[:, :, None] if padded.ndim == 2 else padded


def image_to_tensor(image: np.ndarray, encoding: str, spec: ModelSpec) -> np.ndarray:
    """A decoded camera image -> the (1, C, H, W) float32 tensor the model expects.

    Resizing (spec.resize_mode: stretched to the input size, or letterboxed) happens on the
    8/16-bit image, before conversion to float (less memory traffic).
    Scaling to [0, 1] and (x - mean) / std are fused into one multiply-add per channel,
    written straight into the NCHW tensor. Training calls this same function.
    """
    enc = lookup_encoding(encoding)
    if enc.kind == 'depth':
        raise ImageFormatError(f'{encoding} is a depth encoding; this model wants an image',
                               'encoding')
    height, width = spec.input_size
    if height and width and image.shape[:2] != (height, width):
        image = letterbox_image(image, height, width) if spec.resize_mode == 'letterbox' \
            else resize_image(image, height, width)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = spec.input_channels
    source = _source_channels(image, encoding, channels, spec.color_order)
    full = np.float32(np.iinfo(enc.dtype).max)
    mean = np.asarray(spec.mean[:channels], dtype=np.float32)
    std = np.asarray(spec.std[:channels], dtype=np.float32)
    scale, offset = np.float32(1.0) / (full * std), mean / std
    tensor = np.empty((1, channels, image.shape[0], image.shape[1]), dtype=np.float32)
    for c, plane in enumerate(source):
        if isinstance(plane, tuple):  # ('luma', weights): a mix of the colour planes
            np.dot(image[:, :, :3].astype(np.float32), plane[1], out=tensor[0, c])
            tensor[0, c] *= scale[c]
        else:
            np.multiply(plane, scale[c], out=tensor[0, c], casting='unsafe')
        tensor[0, c] -= offset[c]
    return tensor


def _source_channels(image: np.ndarray, encoding: str, channels: int, color_order: str):
    """Per model channel: the image plane to use, or ('luma', weights in the image's order)."""
    if channels == 1:
        if image.shape[2] == 1:
            return [image[:, :, 0]]
        return [('luma', LUMA_RGB if encoding.startswith('rgb') else LUMA_RGB[::-1].copy())]
    if channels != 3:
        raise ImageFormatError(f'models with {channels} image channels are not supported',
                               'channels')
    if image.shape[2] == 1:
        return [image[:, :, 0]] * 3
    same_order = encoding.startswith('rgb') == (color_order == 'rgb')
    order = (0, 1, 2) if same_order else (2, 1, 0)
    return [image[:, :, i] for i in order]
