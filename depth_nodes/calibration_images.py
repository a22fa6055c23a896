"""INT8 calibration feeds from a directory of images, through the node's own pre-processing.

``build_engine --calibration-dir`` passes these feeds to the TensorRT runtime, which takes any
iterable of ``{input name: float32 tensor}``; feeds from a training dataset come from
``training.calibration_feeds`` (a source checkout), never from the installed package.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from depth_nodes.core.model_spec import ModelSpec

# NVIDIA's INT8 guidance: a few hundred representative images are enough for CNNs.
DEFAULT_CALIBRATION_SAMPLES = 500
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.pgm', '.ppm', '.webp')


def read_calibration_image(path: Path) -> tuple[np.ndarray, str]:
    """An image file as (pixels, ROS encoding), the way a camera driver would publish it."""
    import cv2
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"calibration image '{path}' cannot be read (not an image?)")
    channels = 1 if image.ndim == 2 else image.shape[2]
    encodings = {(np.uint8, 1): 'mono8', (np.uint16, 1): 'mono16', (np.uint8, 3): 'bgr8',
                 (np.uint8, 4): 'bgra8'}
    encoding = encodings.get((image.dtype.type, channels))
    if encoding is None:
        raise ValueError(f"calibration image '{path}': {channels}-channel {image.dtype} images "
                         'are not supported (use 8-bit colour or 8/16-bit mono)')
    return (image if channels > 1 else image.reshape(image.shape[:2])), encoding


def calibration_batches_from_directory(directory: Path, spec: ModelSpec,
                                       limit: int = DEFAULT_CALIBRATION_SAMPLES
                                       ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds for single-image models from the image files in ``directory`` (sorted by name).

    Each image goes through image_to_tensor with the model's spec: what the node does.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"calibration directory '{directory}' does not exist")
    if len(spec.input_names) != 1 or spec.input_kind not in ('rgb', 'gray', 'nir'):
        raise ValueError(f'a directory of images calibrates single-image models; this model '
                         f"takes {list(spec.input_names)} ({spec.input_kind}): use "
                         '--calibration-dataset')
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration directory '{directory}' holds no images "
                         f'({", ".join(IMAGE_SUFFIXES)})')
    return _image_feeds(files[:limit], spec)


def _image_feeds(files: list[Path], spec: ModelSpec) -> Iterator[dict[str, np.ndarray]]:
    from depth_nodes.core.preprocess import image_to_tensor
    for path in files:
        image, encoding = read_calibration_image(path)
        yield {spec.input_names[0]: image_to_tensor(image, encoding, spec)}
