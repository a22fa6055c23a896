"""The projection head H of CUT (Park et al. 2020) and the contrastive CycleGAN (Suarez et al.):
a small MLP per encoder layer that maps the features at sampled spatial locations to unit
vectors, where PatchNCE (training/losses/patchnce.py) compares them.

    z_l^s = H_l(G_enc^l(x))[s] / ||.||_2,   H_l = Linear(C_l, D) - ReLU - Linear(D, D)

API: ``PatchProjectionHead(feature_channels, projection_dim=256)`` with one MLP per layer
(``feature_channels[l]`` = C_l, e.g. from ``ResnetGenerator.feature_channels``);
``sample_patch_locations(features, num_patches)`` draws S_l locations per layer (the same
ones must be used for the input and the translated image, so they are drawn once and passed
to both ``head(features, locations)`` calls).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def sample_patch_locations(features: Sequence[torch.Tensor], num_patches: int
                           ) -> list[torch.Tensor]:
    """Per layer, ``num_patches`` distinct flat indices into H*W (all of them when the map has
    fewer locations, or when num_patches is 0), from torch's global generator."""
    if num_patches < 0:
        raise ValueError('num_patches must be >= 0')
    locations = []
    for feature in features:
        count = feature.shape[2] * feature.shape[3]
        if num_patches == 0 or num_patches >= count:
            locations.append(torch.arange(count, device=feature.device))
        else:
            locations.append(torch.randperm(count, device=feature.device)[:num_patches])
    return locations


class PatchProjectionHead(nn.Module):
    """(B, C_l, H_l, W_l) features + (S_l,) locations -> (B, S_l, D) unit vectors, per layer."""

    def __init__(self, feature_channels: Sequence[int], projection_dim: int = 256):
        super().__init__()
        if not feature_channels or min(feature_channels) < 1 or projection_dim < 1:
            raise ValueError('need at least one layer, channels >= 1 and projection_dim >= 1')
        self.feature_channels = tuple(int(c) for c in feature_channels)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, projection_dim), nn.ReLU(inplace=True),
                          nn.Linear(projection_dim, projection_dim))
            for c in self.feature_channels)

    def forward(self, features: Sequence[torch.Tensor], locations: Sequence[torch.Tensor]
                ) -> list[torch.Tensor]:
        if len(features) != len(self.mlps) or len(locations) != len(self.mlps):
            raise ValueError(f'head has {len(self.mlps)} layers, got {len(features)} feature '
                             f'maps and {len(locations)} location sets')
        out = []
        for mlp, feature, index in zip(self.mlps, features, locations):
            if feature.shape[1] != mlp[0].in_features:
                raise ValueError(f'features with {feature.shape[1]} channels for a head layer '
                                 f'of {mlp[0].in_features}')
            patches = feature.flatten(2).index_select(2, index).transpose(1, 2)  # (B, S, C)
            out.append(F.normalize(mlp(patches), dim=-1))
        return out
