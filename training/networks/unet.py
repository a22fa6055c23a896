"""U-Net generator of Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks" (CVPR 2017), section 3.2.1 and appendix 6.1.1 (the 256x256 generator):

    encoder: C64-C128-C256-C512-C512-C512-C512-C512         256 -> 1 (eight 4x4/2 convs)
    decoder: CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128  1 -> 256 (eight 4x4/2 up-convs)

Ck = Convolution-BatchNorm-ReLU with k filters, CDk the same with dropout 0.5; encoder ReLUs
are leaky (0.2), decoder ReLUs are not. The decoder counts are the channels each decoder
layer receives: its predecessor's output concatenated with the mirrored encoder layer's
(skip connection from encoder layer i to decoder layer n - i), e.g. 512 up + 512 skip = 1024.
The last up-convolution maps to ``out_channels`` with a tanh. No BatchNorm on C64 (as the
paper says), nor on the innermost layer: with the paper's batch size of 1 its map is 1x1 and
BatchNorm would normalise every bottleneck channel to zero.

``base_channels`` (64 in the paper) scales every layer; ``num_downs`` is 8 for 256x256 (a
1x1 bottleneck), and any input whose sides are multiples of 2**num_downs works.
"""
from __future__ import annotations

import torch
from torch import nn

from training.networks.patchgan import MAX_CHANNEL_MULTIPLIER, NORMS, normalization_layer


class UNetGenerator(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1]."""

    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 64,
                 num_downs: int = 8, norm: str = 'batch', dropout: float = 0.5,
                 dropout_blocks: int = 3):
        super().__init__()
        if min(in_channels, out_channels, base_channels) < 1 or num_downs < 2:
            raise ValueError('channels must be >= 1 and num_downs >= 2')
        if norm not in NORMS:
            raise ValueError(f"norm '{norm}' not in {NORMS}")
        self.num_downs = num_downs
        bias = norm != 'batch'
        # Output channels of encoder layer i; decoder layer j mirrors encoder layer n-1-j.
        enc = [base_channels * min(2 ** i, MAX_CHANNEL_MULTIPLIER) for i in range(num_downs)]
        self.encoder = nn.ModuleList()
        for i, channels in enumerate(enc):
            normalised = 0 < i < num_downs - 1
            self.encoder.append(nn.Sequential(
                nn.Conv2d(in_channels if i == 0 else enc[i - 1], channels, 4, 2, 1,
                          bias=bias or not normalised),
                normalization_layer(norm if normalised else 'none', channels),
                nn.LeakyReLU(0.2, inplace=True)))
        self.decoder = nn.ModuleList()
        for j in range(num_downs - 1):
            source = num_downs - 1 - j          # the encoder layer this up-conv reads
            received = enc[source] * (1 if j == 0 else 2)
            block = [nn.ConvTranspose2d(received, enc[source - 1], 4, 2, 1, bias=bias),
                     normalization_layer(norm, enc[source - 1])]
            if j < dropout_blocks and dropout > 0:
                block.append(nn.Dropout(dropout))
            block.append(nn.ReLU(inplace=True))
            self.decoder.append(nn.Sequential(*block))
        self.output = nn.Sequential(nn.ConvTranspose2d(enc[0] * 2, out_channels, 4, 2, 1),
                                    nn.Tanh())

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** self.num_downs

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        x = image
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        skips.pop()                              # the bottleneck is x itself
        for layer in self.decoder:
            x = torch.cat([layer(x), skips.pop()], dim=1)
        return self.output(x)
