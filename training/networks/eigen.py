"""Eigen, Puhrsch and Fergus, "Depth Map Prediction from a Single Image using a Multi-Scale
Deep Network" (NIPS 2014), Fig. 1: a coarse global stack and a fine local stack.

Layer output sizes (width x height) for the NYU Depth input of 304x228:

    coarse 1: 37x27 (1:8)   coarse 2-4: 18x13 (1:16)   coarse 5: 8x6 (1:32)
    coarse 6: 4096 units    coarse 7: 74x55 (1:4)      fine 1-3: 74x55 (1:4)

Coarse 1 pools 2x2; coarse 2 and 5 pool 3x3 with stride 2 (the overlapping pooling of
Krizhevsky et al.'s network, from which the coarse stack's lower layers were initialised):
this is what reproduces 18x13 -> 8x6 above. The last fully connected layer outputs the
coarse depth map directly: each output unit is a learned template over the whole image, so
there is no hard-coded upsampling. Its size equals the fine stack's feature maps, which it
joins as a 64th channel. Both outputs are log depth; hidden layers use ReLU, coarse 7 and
fine 3 are linear.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# Channels of coarse 1-5 and the fine stack in the paper; width_scale multiplies them.
COARSE_CHANNELS = (96, 256, 384, 384, 256)
FINE_CHANNELS = 64   # fine 1 has 63 image features + the coarse map; fine 2 has 64


@dataclass(frozen=True)
class EigenArchitecture:
    input_height: int = 228
    input_width: int = 304
    width_scale: float = 1.0     # multiplies every convolution's channel count
    fc_units: int = 4096         # coarse 6
    dropout: float = 0.5         # on coarse 6 during training
    initial_depth: float = 1.0   # metres: coarse 7 and fine 3 biases start at ln(this)

    def __post_init__(self) -> None:
        if self.width_scale <= 0 or self.fc_units <= 0:
            raise ValueError('width_scale and fc_units must be positive')
        if self.initial_depth <= 0:
            raise ValueError('initial_depth must be positive (metres)')
        coarse5 = self.coarse_sizes()['coarse5']
        if min(coarse5) < 1 or min(self.output_size) < 1:
            raise ValueError(f'input {self.input_width}x{self.input_height} is too small for '
                             'the Eigen network (coarse 5 or the output would be empty)')

    def channels(self, paper_channels: int) -> int:
        return max(1, int(round(paper_channels * self.width_scale)))

    def coarse_sizes(self) -> dict[str, tuple[int, int]]:
        """(height, width) after each coarse convolution + pooling layer."""
        h, w = _conv(self.input_height, 11, 4), _conv(self.input_width, 11, 4)
        sizes = {'coarse1': (h // 2, w // 2)}
        h, w = _pool3(sizes['coarse1'][0]), _pool3(sizes['coarse1'][1])
        sizes.update(coarse2=(h, w), coarse3=(h, w), coarse4=(h, w))
        sizes['coarse5'] = (_pool3(h), _pool3(w))
        return sizes

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of fine 1-3 and of the coarse map: 9x9/2 conv, 2x2 pool."""
        return (_conv(self.input_height, 9, 2) // 2, _conv(self.input_width, 9, 2) // 2)


def _conv(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _pool3(size: int) -> int:
    return (size - 3) // 2 + 1


class CoarseNetwork(nn.Module):
    """Image (B, 3, H, W) -> coarse log depth (B, 1, h, w) from global context."""

    def __init__(self, arch: EigenArchitecture):
        super().__init__()
        c1, c2, c3, c4, c5 = (arch.channels(c) for c in COARSE_CHANNELS)
        self.output_size = arch.output_size
        pooled_h, pooled_w = arch.coarse_sizes()['coarse5']
        self.coarse1 = nn.Sequential(nn.Conv2d(3, c1, 11, stride=4), nn.ReLU(inplace=True),
                                     nn.MaxPool2d(2))
        self.coarse2 = nn.Sequential(nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True),
                                     nn.MaxPool2d(3, stride=2))
        self.coarse3 = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True))
        self.coarse4 = nn.Sequential(nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True))
        self.coarse5 = nn.Sequential(nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.MaxPool2d(3, stride=2))
        self.coarse6 = nn.Sequential(nn.Flatten(), nn.Linear(c5 * pooled_h * pooled_w,
                                                             arch.fc_units),
                                     nn.ReLU(inplace=True), nn.Dropout(arch.dropout))
        self.coarse7 = nn.Linear(arch.fc_units, self.output_size[0] * self.output_size[1])
        with torch.no_grad():
            self.coarse7.bias.fill_(math.log(arch.initial_depth))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.coarse5(self.coarse4(self.coarse3(self.coarse2(self.coarse1(image)))))
        coarse = self.coarse7(self.coarse6(x))
        return coarse.view(-1, 1, *self.output_size)


class FineNetwork(nn.Module):
    """Image + coarse log depth -> refined log depth at the coarse map's size."""

    def __init__(self, arch: EigenArchitecture):
        super().__init__()
        features = arch.channels(FINE_CHANNELS)
        self.fine1 = nn.Sequential(nn.Conv2d(3, max(1, features - 1), 9, stride=2),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(2))
        # Zero-padded convolutions keep the output size from here on.
        self.fine2 = nn.Sequential(nn.Conv2d(max(1, features - 1) + 1, features, 5, padding=2),
                                   nn.ReLU(inplace=True))
        self.fine3 = nn.Conv2d(features, 1, 5, padding=2)
        with torch.no_grad():
            self.fine3.bias.fill_(math.log(arch.initial_depth))

    def forward(self, image: torch.Tensor, coarse_log_depth: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.fine1(image), coarse_log_depth], dim=1)
        return self.fine3(self.fine2(features))


class EigenDepthNetwork(nn.Module):
    """The exported network: image -> log depth from the fine stack (or the coarse one alone
    while only the coarse stack has been trained)."""

    def __init__(self, coarse: CoarseNetwork, fine: FineNetwork, use_fine: bool = True):
        super().__init__()
        self.coarse = coarse
        self.fine = fine
        self.use_fine = use_fine

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        coarse = self.coarse(image)
        return self.fine(image, coarse) if self.use_fine else coarse
