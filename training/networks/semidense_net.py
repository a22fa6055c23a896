"""Makarov et al., "Depth Map Interpolation using Perceptual Loss": a compact residual CNN that
turns semi-dense depth (LSD-SLAM: 10-15 % of the pixels, along intensity edges) into dense
depth, here as a correction of a classical fill in scale-free log depth.

Input (depth_nodes.core.semidense.semidense_fill_tensor): the nearest known depth of every
pixel n (metres), the known mask m, the distance to that known pixel (pixels) [, intensity
[, the neighbourhood fill nb [, the log-linear fill cl]]] (metres). Inside the graph,
with c the frame's mean log known depth (its geometric mean depth),

    c = sum(m log n) / sum(m)                      scale: c -> c + log k when depths x k
    x = log n - c                                  the fill, scale-free
    log d = c + x + f([x, m, log(1 + dist) / 4 [, I]])                 3 or 4 channels
    log d = c + (1 - a) b + a (log cl - c) + f_1(...),                 6 channels
            a = sigmoid((dist - 10) / 2.5 + f_0(...))
    d_out = n where m, else d                      known depths pass through exactly

so a room at 0.5 m and a street at 50 m look alike to f, doubling every known depth doubles
the output, and f = 0 (its head starts at zero) is exactly the classical fill: training only
has to add what the fill gets wrong (slopes between samples, edges the intensity shows). The
6-channel model starts as the neighbourhood fill near the samples and the linear fill (in
log depth, over the samples' Delaunay triangles) far from them (10 px: half and half), and
learns where to move that boundary (f_0) and a correction (f_1).

f is the paper's network, all filters 3x3 except the projections' 1x1, ELU after every
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
(body, at 1:2) + 2 x 2 (head) = 131 pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# 6-channel models: a = sigmoid((distance - centre) / width + g), g learnt (0 at the start)
from depth_nodes.core.semidense import BLEND_CENTRE, BLEND_WIDTH

LEAKY_SLOPE = 0.1
UPSCALE = 2   # the single downsampling stage, undone by the pixel shuffle
MIN_DEPTH = 1e-6      # metres: floor before the log (known depths are > 0)
LOG_RANGE = 20.0      # |log d - c| is clamped here: exp stays finite whatever f says
DISTANCE_SCALE = 4.0  # log(1 + distance) / 4: about 1 at 50 pixels from the nearest sample
# The paper's ELU, or (leaky) ReLU: ONNX Runtime's CPU provider fuses ReLU and LeakyReLU
# into the convolution before it, while its ELU is a separate pass over every feature map
# (the model card times them). Leaky, because a ReLU network that starts as the fill can die
# before it learns (every unit negative, no gradient).
ACTIVATIONS = {'elu': nn.ELU, 'relu': nn.ReLU,
               'leaky_relu': lambda: nn.LeakyReLU(LEAKY_SLOPE)}


@dataclass(frozen=True)
class SemiDenseArchitecture:
    # nearest depth, mask, distance (+ intensity: 4, + neighbourhood and linear fills:
    # 6, the first guess a learnt blend of the two)
    in_channels: int = 3
    stem_channels: int = 16                       # full-resolution features
    channels: int = 32                            # half-resolution features
    dilations: tuple[int, ...] = (1, 2, 4, 8)     # one residual block per rate
    dropout: float = 0.5
    activation: str = 'elu'              # the paper's; 'relu' fuses into ONNX Runtime's Conv

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation '{self.activation}' not in {sorted(ACTIVATIONS)}")
        if self.in_channels not in (3, 4, 6):
            raise ValueError(f'in_channels must be 3 (nearest depth, mask, distance), 4 '
                             f'(+ intensity) or 6 (+ neighbourhood and linear fills), '
                             f'got {self.in_channels}')
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


def frame_log_mean(x: torch.Tensor) -> torch.Tensor:
    """c = sum(m log n) / sum(m), (B, 1, 1, 1): the log of each frame's geometric mean known
    depth, from an input batch (nearest depth n in channel 0, mask m in channel 1)."""
    log_nearest = torch.log(x[:, 0:1].clamp(min=MIN_DEPTH))
    mask = x[:, 1:2]
    return (mask * log_nearest).sum(dim=(2, 3), keepdim=True) / \
        mask.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)


class ResidualBlock(nn.Module):
    """y = ELU(x + conv_d(ELU(conv_d(x)))), conv_d a 3x3 convolution with dilation d."""

    def __init__(self, channels: int, dilation: int = 1, activation: str = 'elu'):
        super().__init__()
        self.conv1 = conv3x3(channels, channels, dilation=dilation)
        self.conv2 = zero_init(conv3x3(channels, channels, dilation=dilation))
        self.elu = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.elu(x + self.conv2(self.elu(self.conv1(x))))


class ProjectionBlock(nn.Module):
    """A residual block whose identity path is a 1x1 convolution (new width or stride):
    y = ELU(P x + conv(ELU(conv_s(x)))), P the 1x1 projection with the same stride s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dilation: int = 1, activation: str = 'elu'):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride,
                             dilation=1 if stride > 1 else dilation)
        self.conv2 = zero_init(conv3x3(out_channels, out_channels, dilation=dilation))
        self.projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        self.elu = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.elu(self.projection(x) + self.conv2(self.elu(self.conv1(x))))


class SemiDenseNet(nn.Module):
    """(B, C_in, H, W) nearest depth (metres), mask, distance (pixels) [, intensity in
    [0, 1]] -> (B, 1, H, W) dense depth in metres; H and W even."""

    def __init__(self, arch: SemiDenseArchitecture = SemiDenseArchitecture()):
        super().__init__()
        self.arch = arch
        self.gated = arch.in_channels == 6
        outputs = 2 if self.gated else 1   # (blend logit g,) log-depth correction
        self.stem = nn.Sequential(conv3x3(arch.in_channels, arch.stem_channels),
                                  ACTIVATIONS[arch.activation]())
        self.down = ProjectionBlock(arch.stem_channels, arch.channels, stride=UPSCALE,
                                    activation=arch.activation)
        self.body = nn.Sequential(*[ResidualBlock(arch.channels, int(d), arch.activation)
                                    for d in arch.dilations])
        self.dropout = nn.Dropout(arch.dropout)
        # The last convolution is linear (a correction of either sign) and starts at zero:
        # the untrained network is the nearest fill.
        self.head = zero_init(conv3x3(arch.channels, outputs * UPSCALE * UPSCALE))
        self.shuffle = nn.PixelShuffle(UPSCALE)

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        """f: the log-depth correction of the fill, (B, C_in, H, W) -> (B, 1, H, W) (gated
        models: (B, 2, H, W), the blend logit and the correction)."""
        hidden = self.body(self.down(self.stem(features)))
        return self.shuffle(self.head(self.dropout(hidden)))

    def forward_log(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log d - c, c): the prediction relative to the frame's mean log known depth."""
        if x.shape[-2] % UPSCALE or x.shape[-1] % UPSCALE:
            raise ValueError(f'input height and width must be divisible by {UPSCALE}, got '
                             f'{tuple(x.shape[-2:])}')
        mask, distance = x[:, 1:2], x[:, 2:3]
        c = frame_log_mean(x)
        fill = torch.log(x[:, 0:1].clamp(min=MIN_DEPTH)) - c
        features = [fill, mask, torch.log1p(distance) / DISTANCE_SCALE]
        if self.arch.in_channels >= 4:
            features.append(x[:, 3:4])
        if not self.gated:
            relative = fill + self.correction(torch.cat(features, dim=1))
            return relative.clamp(-LOG_RANGE, LOG_RANGE), c
        near = torch.log(x[:, 4:5].clamp(min=MIN_DEPTH)) - c
        linear = torch.log(x[:, 5:6].clamp(min=MIN_DEPTH)) - c
        features += [near, linear]
        out = self.correction(torch.cat(features, dim=1))
        # log d = c + (1 - a) nb + a cl + f,  a = sigmoid((dist - centre) / width + g)
        a = torch.sigmoid((distance - BLEND_CENTRE) / BLEND_WIDTH + out[:, 0:1])
        relative = near + a * (linear - near) + out[:, 1:2]
        return relative.clamp(-LOG_RANGE, LOG_RANGE), c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relative, c = self.forward_log(x)
        return torch.where(x[:, 1:2] > 0.5, x[:, 0:1], torch.exp(relative + c))
