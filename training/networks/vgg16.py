"""VGG16 convolutional features (Simonyan & Zisserman 2015, configuration D) for perceptual
losses, in torchvision's module layout so a torchvision ``vgg16`` state dict loads as is.

``features`` is the same nn.Sequential as torchvision's ``vgg16().features``: index i of the
list below is the key prefix ``features.<i>.`` of its state dict (classifier.* keys are
ignored). Named layers after the paper's blocks:

    0 conv1_1  1 relu1_1  2 conv1_2  3 relu1_2  4 pool1
    5 conv2_1  6 relu2_1  7 conv2_2  8 relu2_2  9 pool2
    10 conv3_1 11 relu3_1 12 conv3_2 13 relu3_2 14 conv3_3 15 relu3_3 16 pool3
    17 conv4_1 18 relu4_1 19 conv4_2 20 relu4_2 21 conv4_3 22 relu4_3 23 pool4
    24 conv5_1 25 relu5_1 26 conv5_2 27 relu5_2 28 conv5_3 29 relu5_3 30 pool5

No weights ship with this project and none are downloaded: pass the path of a torchvision
weights file (e.g. vgg16-397923af.pth) to ``load_vgg16_features``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# Configuration D: output channels of each 3x3 convolution, 'M' = 2x2 max pooling.
VGG16_CONFIG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
                512, 512, 512, 'M')
# ImageNet statistics the torchvision weights were trained with (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    names, block, conv = [], 1, 1
    for item in VGG16_CONFIG:
        if item == 'M':
            names.append(f'pool{block}')
            block, conv = block + 1, 1
        else:
            names += [f'conv{block}_{conv}', f'relu{block}_{conv}']
            conv += 1
    return names


LAYER_NAMES: tuple[str, ...] = tuple(_layer_names())   # index -> name, as in the docstring


class VGG16Features(nn.Module):
    """``features`` up to and including ``last_layer`` (e.g. 'relu2_2'), frozen, eval mode.

    Input: (B, 3, H, W) RGB normalised with IMAGENET_MEAN / IMAGENET_STD.
    """

    def __init__(self, last_layer: str = 'relu2_2'):
        super().__init__()
        if last_layer not in LAYER_NAMES:
            raise ValueError(f"unknown VGG16 layer '{last_layer}'; choose from "
                             f'{", ".join(LAYER_NAMES)}')
        self.last_layer = last_layer
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG16_CONFIG:
            if item == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = item
        self.features = nn.Sequential(*layers[:LAYER_NAMES.index(last_layer) + 1])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> 'VGG16Features':
        return super().train(False)     # a fixed feature extractor: always eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def load_torchvision_state_dict(self, state: dict[str, torch.Tensor], source: str = ''
                                    ) -> None:
        """Load the ``features.*`` tensors of a torchvision vgg16 state dict (the layers up to
        ``last_layer``); any missing or mis-shaped tensor is an error naming it."""
        where = f" in '{source}'" if source else ''
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f'VGG16 weights{where} lack {missing[:4]}'
                             f'{" ..." if len(missing) > 4 else ""} (expected torchvision '
                             "keys such as 'features.0.weight')")
        wrong = [f'{k}: {tuple(state[k].shape)} != {tuple(v.shape)}' for k, v in own.items()
                 if tuple(state[k].shape) != tuple(v.shape)]
        if wrong:
            raise ValueError(f'VGG16 weights{where} have other shapes: {wrong[:3]}')
        self.load_state_dict({k: state[k] for k in own})


def load_vgg16_features(path: str | Path, last_layer: str = 'relu2_2') -> VGG16Features:
    """VGG16Features with weights from a torchvision-format state dict file (torch.save)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VGG16 weights file '{path}' does not exist")
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:   # corrupt or foreign file: torch raises several types
        raise ValueError(f"cannot read VGG16 weights '{path}': {exc}") from None
    if not isinstance(state, dict):
        raise ValueError(f"'{path}' does not hold a state dict (got {type(state).__name__})")
    features = VGG16Features(last_layer)
    features.load_torchvision_state_dict(state, str(path))
    return features
