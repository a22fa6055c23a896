"""Depth Prediction Network (DPN) of Shen et al., "A Depth Estimation Framework Based on
Unsupervised Learning and Cross-Modal Translation": an encoder-decoder that maps one image
to left and right disparity maps at four scales.

Encoder (ResNet18-like, down to 1/32):
- a large-kernel strided first convolution (7x7, stride 2) for global features, then 3x3
  max pooling (1/4);
- four Feature Residual Groups (64, 128, 256, 512 channels at 1/4, 1/8, 1/16, 1/32) of two
  Feature Residual Blocks each. A block is a ResNet basic block whose 3x3 convolutions are
  each factorised into a 1x3 followed by a 3x1 convolution (same receptive field, 6 instead
  of 9 C^2 weights), with BN + ReLU and an identity (or 1x1 projection) skip;
- a scale pyramid of the input: the image average-pooled to 1/4, 1/8 and 1/16 joins the
  inputs of groups 2, 3 and 4, so every stage also sees the raw image at its resolution;
- channel and spatial attention at the bottleneck (CBAM, Woo et al. 2018): channel weights
  from an MLP over average- and max-pooled features, then spatial weights from a 7x7
  convolution over the channel mean and max.

Decoder: two up-convolution blocks (nearest-neighbour 2x upsampling + 3x3 conv, to 1/16
and 1/8), then three sub-pixel convolution blocks (3x3 conv to 4C channels + pixel shuffle,
to 1/4, 1/2 and 1/1). Each block joins the encoder feature of its resolution (skip) and the
upsampled coarser disparity; disparity heads (3x3 conv, sigmoid x max_disparity) at 1/8,
1/4, 1/2 and 1/1 give two channels: left and right disparity as fractions of the width.

Tensor sizes (channels @ width x height) for the paper's 512x256 input, width_scale 1:

    stem 64 @ 256x128      group1 64 @ 128x64     group2 128 @ 64x32
    group3 256 @ 32x16     group4 512 @ 16x8      attention 512 @ 16x8
    upconv1 256 @ 32x16    upconv2 128 @ 64x32    -> disparity 2 @ 64x32 (scale 3)
    subpixel1 64 @ 128x64  -> disparity 2 @ 128x64 (scale 2)
    subpixel2 32 @ 256x128 -> disparity 2 @ 256x128 (scale 1)
    subpixel3 16 @ 512x256 -> disparity 2 @ 512x256 (scale 0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

STEM_CHANNELS = 64
GROUP_CHANNELS = (64, 128, 256, 512)
DECODER_CHANNELS = (256, 128, 64, 32, 16)   # upconv1, upconv2, subpixel1, 2, 3
PYRAMID_FACTORS = (4, 8, 16)                # image scales joining groups 2, 3, 4
SCALES = 4                                  # disparity outputs: 1/1, 1/2, 1/4, 1/8


@dataclass(frozen=True)
class DpnArchitecture:
    input_height: int = 256
    input_width: int = 512
    width_scale: float = 1.0             # multiplies every channel count
    blocks_per_group: int = 2            # ResNet18: 2
    max_disparity: float = 0.3           # fraction of the width (sigmoid * this)
    attention_reduction: int = 16        # channel-attention MLP bottleneck
    # Disparity every head starts at (head biases). Near zero the warps start close to the
    # identity, where the photometric gradient points toward the match; at sigmoid(0) * 0.3
    # = 0.15 of the width the full-resolution map stayed there in our runs (38 px at 256
    # wide: the image gradient there is noise) while the coarse scales learned.
    initial_disparity: float = 0.01

    def __post_init__(self) -> None:
        size = (self.input_height, self.input_width)
        if min(size) < 32 or any(side % 32 for side in size):
            raise ValueError(f'DPN input {self.input_width}x{self.input_height}: both sides '
                             'must be positive multiples of 32 (the encoder reaches 1/32)')
        if self.width_scale <= 0 or self.blocks_per_group < 1:
            raise ValueError('width_scale must be > 0 and blocks_per_group >= 1')
        if not 0 < self.max_disparity <= 1:
            raise ValueError(f'max_disparity is a fraction of the width in (0, 1], got '
                             f'{self.max_disparity}')
        if not 0 < self.initial_disparity < self.max_disparity:
            raise ValueError(f'initial_disparity must be in (0, max_disparity), got '
                             f'{self.initial_disparity}')

    def channels(self, paper_channels: int) -> int:
        return max(4, int(round(paper_channels * self.width_scale)))

    def output_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of the disparity maps, finest (scale 0) first."""
        return [(self.input_height >> s, self.input_width >> s) for s in range(SCALES)]


class FactorisedConv(nn.Module):
    """A 3x3 convolution factorised into 1x3 then 3x1 (stride split over the two), + BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.horizontal = nn.Conv2d(in_channels, out_channels, (1, 3), stride=(1, stride),
                                    padding=(0, 1), bias=False)
        self.vertical = nn.Conv2d(out_channels, out_channels, (3, 1), stride=(stride, 1),
                                  padding=(1, 0), bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.vertical(self.horizontal(x)))


class FeatureResidualBlock(nn.Module):
    """x -> ReLU(F2(ReLU(F1(x))) + skip(x)), F = 1x3/3x1 factorised convolution + BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = FactorisedConv(in_channels, out_channels, stride)
        self.conv2 = FactorisedConv(out_channels, out_channels)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.skip(x))


def feature_residual_group(in_channels: int, out_channels: int, blocks: int, stride: int
                           ) -> nn.Sequential:
    layers = [FeatureResidualBlock(in_channels, out_channels, stride)]
    layers += [FeatureResidualBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ChannelSpatialAttention(nn.Module):
    """CBAM: x * Mc(x), then * Ms(.); Mc = sigmoid(MLP(avg) + MLP(max)) over the spatial
    dimensions, Ms = sigmoid(conv7x7([mean_c; max_c])) over the channels."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Means as sum / count: ReduceMean's axes became an input in ONNX opset 18, which the
        # exporter cannot convert back to our opset 17 (ReduceSum's changed in opset 13).
        spatial_mean = x.sum(dim=(2, 3), keepdim=True) / (x.shape[2] * x.shape[3])
        channel = torch.sigmoid(self.mlp(spatial_mean)
                                + self.mlp(x.amax(dim=(2, 3), keepdim=True)))
        x = x * channel
        pooled = torch.cat([x.sum(dim=1, keepdim=True) / x.shape[1],
                            x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


def conv_elu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ELU(inplace=True))


class UpConv(nn.Module):
    """Nearest-neighbour 2x upsampling + 3x3 conv + ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = conv_elu(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class SubPixelConv(nn.Module):
    """3x3 conv to 4C channels, pixel shuffle (sub-pixel convolution, Shi et al. 2016) to
    C channels at twice the resolution, ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.activation = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.shuffle(self.conv(x)))


class DisparityHead(nn.Module):
    """3x3 conv -> 2 channels (left, right disparity), sigmoid * max_disparity; the bias
    starts at logit(initial / max_disparity), i.e. an output of ``initial_disparity``."""

    def __init__(self, in_channels: int, max_disparity: float, initial_disparity: float):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2, 3, padding=1)
        self.max_disparity = max_disparity
        start = initial_disparity / max_disparity
        with torch.no_grad():
            self.conv.bias.fill_(math.log(start / (1 - start)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.max_disparity * torch.sigmoid(self.conv(x))


class DepthPredictionNetwork(nn.Module):
    """Image (B, 3, H, W) -> [disparity (B, 2, H / 2^s, W / 2^s) for s = 0..3], finest first."""

    def __init__(self, arch: DpnArchitecture = DpnArchitecture()):
        super().__init__()
        self.arch = arch
        ch = arch.channels
        stem = ch(STEM_CHANNELS)
        g1, g2, g3, g4 = (ch(c) for c in GROUP_CHANNELS)
        u1, u2, s1, s2, s3 = (ch(c) for c in DECODER_CHANNELS)
        blocks = arch.blocks_per_group
        # Encoder.
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.group1 = feature_residual_group(stem, g1, blocks, 1)
        self.group2 = feature_residual_group(g1 + 3, g2, blocks, 2)
        self.group3 = feature_residual_group(g2 + 3, g3, blocks, 2)
        self.group4 = feature_residual_group(g3 + 3, g4, blocks, 2)
        self.attention = ChannelSpatialAttention(g4, arch.attention_reduction)
        # Decoder: each i-conv fuses the upsampled features, the skip and the coarser disparity.
        self.upconv1, self.iconv1 = UpConv(g4, u1), conv_elu(u1 + g3, u1)
        self.upconv2, self.iconv2 = UpConv(u1, u2), conv_elu(u2 + g2, u2)
        self.subpixel1, self.iconv3 = SubPixelConv(u2, s1), conv_elu(s1 + g1 + 2, s1)
        self.subpixel2, self.iconv4 = SubPixelConv(s1, s2), conv_elu(s2 + stem + 2, s2)
        self.subpixel3, self.iconv5 = SubPixelConv(s2, s3), conv_elu(s3 + 2, s3)
        self.heads = nn.ModuleList([DisparityHead(c, arch.max_disparity, arch.initial_disparity)
                                    for c in (s3, s2, s1, u2)])

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        pyramid = [F.avg_pool2d(image, f) for f in PYRAMID_FACTORS]
        stem = self.stem(image)                                             # 1/2
        e1 = self.group1(self.pool(stem))                                   # 1/4
        e2 = self.group2(torch.cat([e1, pyramid[0]], dim=1))                # 1/8
        e3 = self.group3(torch.cat([e2, pyramid[1]], dim=1))                # 1/16
        e4 = self.attention(self.group4(torch.cat([e3, pyramid[2]], dim=1)))  # 1/32

        x = self.iconv1(torch.cat([self.upconv1(e4), e3], dim=1))           # 1/16
        x = self.iconv2(torch.cat([self.upconv2(x), e2], dim=1))            # 1/8
        disp3 = self.heads[3](x)
        x = self.iconv3(torch.cat([self.subpixel1(x), e1, _up(disp3)], dim=1))   # 1/4
        disp2 = self.heads[2](x)
        x = self.iconv4(torch.cat([self.subpixel2(x), stem, _up(disp2)], dim=1))  # 1/2
        disp1 = self.heads[1](x)
        x = self.iconv5(torch.cat([self.subpixel3(x), _up(disp1)], dim=1))       # 1/1
        disp0 = self.heads[0](x)
        return [disp0, disp1, disp2, disp3]


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode='nearest')


class LeftDisparityNetwork(nn.Module):
    """The exported network: image -> left disparity (B, 1, H, W) as a fraction of width."""

    def __init__(self, network: DepthPredictionNetwork):
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image)[0][:, :1]
