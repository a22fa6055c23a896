"""ResNet image-to-image generator (Johnson et al. 2016) as used by CycleGAN (Zhu et al. 2017),
CUT (Park et al. 2020) and the contrastive CycleGAN of Suarez, Carpio and Sappa, for any two
domains: ``in_channels`` and ``out_channels`` are free (gray -> depth is 1 -> 1, NIR -> RGB
is 1 -> 3).

Layers, in CycleGAN's notation for base_channels k = 64, n_downsampling = 2, n_blocks = 9
(the 256x256 configuration):

    c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-out, tanh

    stage    operation                                          output (256x256 input)
    stem     reflect pad 3, conv 7x7 / 1, norm, ReLU            64 x 256 x 256
    down1    conv 3x3 / 2, norm, ReLU                           128 x 128 x 128
    down2    conv 3x3 / 2, norm, ReLU                           256 x 64 x 64
    block1-9 reflect pad 1, conv 3x3, norm, ReLU,
             reflect pad 1, conv 3x3, norm, + input             256 x 64 x 64
    up1      transposed conv 3x3 / 2, norm, ReLU                128 x 128 x 128
    up2      transposed conv 3x3 / 2, norm, ReLU                64 x 256 x 256
    head     reflect pad 3, conv 7x7 / 1, tanh                  out x 256 x 256

API (what the NIR -> RGB translation network builds on as well):

- ``ResnetGenerator(in_channels, out_channels, base_channels=64, n_blocks=9,
  n_downsampling=2, norm='instance')``; ``forward(image) -> translated image in [-1, 1]``.
- ``encoder_layers``: the names of the encoder features PatchNCE can use: ``'input'`` (the
  image itself), ``'stem'``, ``'down1'`` .. ``'down<n_downsampling>'``, ``'block1'`` ..
  ``'block<n_blocks>'`` (each a stage's output).
- ``encode(image, layers) -> [features]`` computes only the encoder up to the deepest layer
  asked for; ``feature_channels(layer)`` gives each layer's channel count (to size the
  projection head before any forward pass).

CUT's default PatchNCE layers "0,4,8,12,16" of its sequential generator are, in these names,
input, down1, down2, block1 and block5 (CUT reads the stride-2 convolutions before their
normalisation; here every feature is a stage's output).

Input height and width must be divisible by 2^n_downsampling so that the output has the
input's size.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

NORMS = ('instance', 'batch', 'none')


def encoder_layer_names(n_downsampling: int, n_blocks: int) -> tuple[str, ...]:
    """The encoder feature names of a generator with these stages, shallow to deep."""
    return ('input', 'stem', *(f'down{i}' for i in range(1, n_downsampling + 1)),
            *(f'block{i}' for i in range(1, n_blocks + 1)))


class ReflectionPad(nn.Module):
    """nn.ReflectionPad2d's output (edge pixel not repeated: 3 2 1 | 0 1 2 3 ... ), built from
    mirrored slices and concatenation. ONNX's reflect Pad needs opset 18 with torch's exporter
    and has no adapter down to the project's opset 17; Slice (step -1) + Concat is opset 17
    and TensorRT-compatible, and equals nn.ReflectionPad2d exactly (tested)."""

    def __init__(self, padding: int):
        super().__init__()
        if padding < 0:
            raise ValueError('padding must be >= 0')
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding
        if p == 0:
            return x
        if min(x.shape[2], x.shape[3]) <= p:
            raise ValueError(f'reflection padding {p} needs maps larger than {p} pixels, got '
                             f'{x.shape[3]}x{x.shape[2]}')
        x = torch.cat([x[:, :, 1:p + 1].flip(2), x, x[:, :, -p - 1:-1].flip(2)], dim=2)
        return torch.cat([x[..., 1:p + 1].flip(3), x, x[..., -p - 1:-1].flip(3)], dim=3)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Instance norm without affine parameters or running statistics (CycleGAN's choice:
    every image is normalised by its own statistics, in training and at inference alike)."""
    if norm == 'instance':
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == 'batch':
        return nn.BatchNorm2d(channels)
    if norm == 'none':
        return nn.Identity()
    raise ValueError(f"norm '{norm}' not in {NORMS}")


class ResidualBlock(nn.Module):
    """x + conv-norm-ReLU-conv-norm(x), reflection padded (no border artefacts)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        bias = norm != 'batch'   # a bias before batch norm is cancelled by its mean
        self.body = nn.Sequential(
            ReflectionPad(1), nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels), nn.ReLU(inplace=True),
            ReflectionPad(1), nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image of domain A (in_channels) -> image of domain B (out_channels), values in [-1, 1]."""

    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 64,
                 n_blocks: int = 9, n_downsampling: int = 2, norm: str = 'instance'):
        super().__init__()
        if min(in_channels, out_channels, base_channels) < 1:
            raise ValueError('in_channels, out_channels and base_channels must be >= 1')
        if n_blocks < 0 or n_downsampling < 0:
            raise ValueError('n_blocks and n_downsampling must be >= 0')
        if norm not in NORMS:
            raise ValueError(f"norm '{norm}' not in {NORMS}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_downsampling = n_downsampling
        bias = norm != 'batch'
        stages: dict[str, nn.Module] = {'stem': nn.Sequential(
            ReflectionPad(3), nn.Conv2d(in_channels, base_channels, 7, bias=bias),
            norm_layer(norm, base_channels), nn.ReLU(inplace=True))}
        channels = {'input': in_channels, 'stem': base_channels}
        width = base_channels
        for i in range(1, n_downsampling + 1):
            stages[f'down{i}'] = nn.Sequential(
                nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, width * 2), nn.ReLU(inplace=True))
            width *= 2
            channels[f'down{i}'] = width
        for i in range(1, n_blocks + 1):
            stages[f'block{i}'] = ResidualBlock(width, norm)
            channels[f'block{i}'] = width
        self.encoder = nn.ModuleDict(stages)     # insertion order = the order they run
        decoder: list[nn.Module] = []
        for _ in range(n_downsampling):
            decoder += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1,
                                           output_padding=1, bias=bias),
                        norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        decoder += [ReflectionPad(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)
        self._channels = channels

    @property
    def encoder_layers(self) -> tuple[str, ...]:
        """Names of the encoder features, shallow to deep (``'input'`` first)."""
        return tuple(self._channels)

    def feature_channels(self, layer: str) -> int:
        try:
            return self._channels[layer]
        except KeyError:
            raise ValueError(f"generator has no encoder layer '{layer}'; layers: "
                             f'{list(self._channels)}') from None

    def _check_size(self, image: torch.Tensor) -> None:
        if image.dim() != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f'generator expects (B, {self.in_channels}, H, W), got '
                             f'{tuple(image.shape)}')
        factor = 2 ** self.n_downsampling
        if image.shape[2] % factor or image.shape[3] % factor:
            raise ValueError(f'input {image.shape[3]}x{image.shape[2]} is not divisible by '
                             f'{factor} (2^n_downsampling)')

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self._check_size(image)
        x = image
        for stage in self.encoder.values():
            x = stage(x)
        return self.decoder(x)

    def encode(self, image: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """Encoder features at ``layers`` (any order; returned in that order)."""
        for layer in layers:
            self.feature_channels(layer)    # names an unknown layer in the error
        self._check_size(image)
        wanted = set(layers)
        found = {'input': image}
        x = image
        for name, stage in self.encoder.items():
            if wanted <= found.keys():
                break
            x = stage(x)
            found[name] = x
        return [found[layer] for layer in layers]
