"""Makarov et al., "Depth Map Interpolation using Perceptual Loss": a compact residual CNN that
turns semi-dense depth (LSD-SLAM: 10-15 % of the pixels, along intensity edges) into dense
depth.

The paper's building blocks, all filters 3x3 except the projections' 1x1, ELU after every
convolution but the last:

    stem        conv 3x3 (C_in -> stem)                             full resolution
    down        projection block, stride 2 (stem -> channels)       1:2, the only downsampling
    body        residual blocks with dilation 1, 2, 4, 8 (default)  1:2, receptive field grows
    dropout     p = 0.5 (training only)
    head        conv 3x3 (channels -> 4), pixel shuffle x2          full resolution, 1 channel

A residual block is y = ELU(x + conv(ELU(conv(x)))), its two convolutions dilated by the
block's rate; a projection block adds a 1x1 convolution on the identity path where the
channel count or the resolution changes. The sub-pixel convolution (Shi et al. 2016) turns
the 4 channels of each half-resolution pixel into a 2x2 block of output pixels, so the
network is fully convolutional for any input whose height and width are even.

Receptive field with the defaults: 3 (stem) + 2 x 2 (down, at 1:2) + 2 x 2 x (1+2+4+8) x 2
(body, at 1:2) + 2 x 2 (head) = 131 pixels: gaps between semi-dense edges of ~60 pixels
are filled from both sides.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

UPSCALE = 2   # the single downsampling stage, undone by the pixel shuffle


@dataclass(frozen=True)
class SemiDenseArchitecture:
    in_channels: int = 2                          # depth + mask (+ intensity: 3)
    stem_channels: int = 16                       # full-resolution features
    channels: int = 32                            # half-resolution features
    dilations: tuple[int, ...] = (1, 2, 4, 8)     # one residual block per rate
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.in_channels not in (2, 3):
            raise ValueError(f'in_channels must be 2 (depth, mask) or 3 (+ intensity), got '
                             f'{self.in_channels}')
        if self.stem_channels < 1 or self.channels < 1:
            raise ValueError('stem_channels and channels must be positive')
        if not self.dilations or any(int(d) < 1 for d in self.dilations):
            raise ValueError(f'dilations must be positive integers, got {self.dilations}')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout}')


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1
            ) -> nn.Conv2d:
    # padding = dilation keeps the size of a dilated 3x3 convolution (stride 1).
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation,
                     dilation=dilation)


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Start a block's last convolution at zero: the block begins as its identity path, so
    the deep stack first trains like a shallow one (Goyal et al. 2017; Zhang et al., Fixup).
    Only the initialisation changes, not the architecture."""
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ResidualBlock(nn.Module):
    """y = ELU(x + conv_d(ELU(conv_d(x)))), conv_d a 3x3 convolution with dilation d."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = conv3x3(channels, channels, dilation=dilation)
        self.conv2 = zero_init(conv3x3(channels, channels, dilation=dilation))
        self.elu = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.elu(x + self.conv2(self.elu(self.conv1(x))))


class ProjectionBlock(nn.Module):
    """A residual block whose identity path is a 1x1 convolution (new width or stride):
    y = ELU(P x + conv(ELU(conv_s(x)))), P the 1x1 projection with the same stride s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride,
                             dilation=1 if stride > 1 else dilation)
        self.conv2 = zero_init(conv3x3(out_channels, out_channels, dilation=dilation))
        self.projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        self.elu = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.elu(self.projection(x) + self.conv2(self.elu(self.conv1(x))))


class SemiDenseNet(nn.Module):
    """(B, C_in, H, W) normalised semi-dense depth, mask [, intensity] -> (B, 1, H, W)
    normalised dense depth (the scale of the input's depth channel); H and W even."""

    def __init__(self, arch: SemiDenseArchitecture = SemiDenseArchitecture()):
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(conv3x3(arch.in_channels, arch.stem_channels), nn.ELU())
        self.down = ProjectionBlock(arch.stem_channels, arch.channels, stride=UPSCALE)
        self.body = nn.Sequential(*[ResidualBlock(arch.channels, int(d))
                                    for d in arch.dilations])
        self.dropout = nn.Dropout(arch.dropout)
        # The last convolution is linear: depth may take any value, ELU would floor it at -1.
        self.head = conv3x3(arch.channels, UPSCALE * UPSCALE)
        self.shuffle = nn.PixelShuffle(UPSCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % UPSCALE or x.shape[-1] % UPSCALE:
            raise ValueError(f'input height and width must be divisible by {UPSCALE}, got '
                             f'{tuple(x.shape[-2:])}')
        features = self.body(self.down(self.stem(x)))
        return self.shuffle(self.head(self.dropout(features)))
