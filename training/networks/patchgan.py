"""PatchGAN discriminator of Isola et al., "Image-to-Image Translation with Conditional
Adversarial Networks" (CVPR 2017), section 3.2.2 and appendix 6.1.2.

The 70x70 discriminator (n_layers = 3) is C64-C128-C256-C512, then a convolution to one
channel: Ck = 4x4 Convolution-Norm-LeakyReLU(0.2); the first three stride 2, C512 and the
last stride 1; no normalisation on C64. For a 256x256 input the map of patch logits is 30x30:

    256 -> C64 128 -> C128 64 -> C256 32 -> C512 31 -> out 30

Each logit sees a 70x70 window (receptive_field(3) = 70) and says whether that patch is
real; averaging the patch losses models the image as a Markov random field, so the
discriminator judges high-frequency structure while the L1 term handles low frequencies.

Generic on purpose: ``in_channels`` is whatever is judged (pix2pix: the RGB condition
concatenated with the 1-channel depth, 4; an unconditional CycleGAN discriminator: the image
alone), ``norm`` is batch (pix2pix) or instance (CycleGAN, CUT).
"""
from __future__ import annotations

import torch
from torch import nn

NORMS = ('batch', 'instance', 'none')
MAX_CHANNEL_MULTIPLIER = 8   # channels stop doubling at 8 x base (C512 for base 64)


def normalization_layer(norm: str, channels: int) -> nn.Module:
    """BatchNorm, InstanceNorm (no affine, as in CycleGAN) or nothing."""
    if norm == 'batch':
        return nn.BatchNorm2d(channels)
    if norm == 'instance':
        return nn.InstanceNorm2d(channels)
    if norm == 'none':
        return nn.Identity()
    raise ValueError(f"norm '{norm}' not in {NORMS}")


def receptive_field(n_layers: int) -> int:
    """Input pixels (per side) seen by one logit: n_layers stride-2 and two stride-1 4x4
    convolutions, walked back from the output, r <- (r - 1) * stride + 4."""
    size = 1
    for stride in [1, 1] + [2] * n_layers:
        size = (size - 1) * stride + 4
    return size


class PatchGANDiscriminator(nn.Module):
    """(B, in_channels, H, W) -> (B, 1, h, w) patch logits (apply sigmoid in the loss)."""

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3,
                 norm: str = 'batch'):
        super().__init__()
        if in_channels < 1 or base_channels < 1 or n_layers < 1:
            raise ValueError('in_channels, base_channels and n_layers must be >= 1')
        if norm not in NORMS:
            raise ValueError(f"norm '{norm}' not in {NORMS}")
        self.n_layers = n_layers
        bias = norm != 'batch'   # BatchNorm's shift makes a convolution bias redundant
        channels = [base_channels * min(2 ** i, MAX_CHANNEL_MULTIPLIER)
                    for i in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(channels[i - 1], channels[i], 4, stride, 1, bias=bias),
                       normalization_layer(norm, channels[i]), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(channels[-1], 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.n_layers)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the logit map for an (height, width) input."""
        def size(n: int) -> int:
            for _ in range(self.n_layers):
                n = (n + 2 - 4) // 2 + 1
            return n - 2   # two stride-1 4x4 convolutions with padding 1
        return size(height), size(width)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.layers(pair)
