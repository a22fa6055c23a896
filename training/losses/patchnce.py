"""Contrastive PatchNCE loss of CUT (Park et al. 2020), eq. 3 of the contrastive CycleGAN of
Suarez, Carpio and Sappa: a patch of the translated image must be more similar to the patch
of the input at the same location (the positive) than to the input's other sampled patches
(the negatives), in the projection head's feature space, at several encoder layers.

API: ``PatchNCELoss(temperature)`` is the per-layer term ``l``; ``MultilayerPatchNCELoss(
temperature, num_patches)`` sums it over layers, given the encoder features of the input and
of the translated image and the projection head (training/networks/projection_head.py).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from training.networks.projection_head import PatchProjectionHead, sample_patch_locations


class PatchNCELoss(nn.Module):
    """InfoNCE over the S sampled locations of one layer, mean over batch and locations.

    l(v, v+, v-) = -log[ exp(v.v+ / tau) / (exp(v.v+ / tau) + sum_n exp(v.v-_n / tau)) ]

    query (B, S, D): v, features of the translated image; keys (B, S, D): features of the
    input at the same locations, key s being the positive of query s and the other S - 1
    keys of the same image its negatives (CUT's internal negatives). Rows are expected to be
    unit vectors. The keys are detached, as in CUT: the input's features are the fixed
    target the translated patch is pulled towards.

    With identical unit queries and keys that are mutually orthogonal the loss is its value
    for perfect positives and neutral negatives: log(1 + (S - 1) exp(-1 / tau)).
    """

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        if temperature <= 0:
            raise ValueError('temperature must be > 0')
        self.temperature = temperature

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if query.shape != keys.shape or query.dim() != 3:
            raise ValueError(f'query {tuple(query.shape)} and keys {tuple(keys.shape)} must '
                             'both be (B, S, D)')
        batch, patches, _ = query.shape
        # logits[b, s, s'] = v_s . k_s' / tau: the diagonal holds v.v+, the rest v.v-.
        logits = torch.bmm(query, keys.detach().transpose(1, 2)) / self.temperature
        # -log softmax at the positive = the l of eq. 3 for each (b, s).
        target = torch.arange(patches, device=query.device).repeat(batch)
        return F.cross_entropy(logits.reshape(batch * patches, patches), target)


class MultilayerPatchNCELoss(nn.Module):
    """L_PatchNCE(G, H, X) = E_x sum_{l=1..L} sum_{s=1..S_l} l(z^_l^s, z_l^s, z_l^{S\\s})
    (eq. 3), z_l = H_l(G_enc^l(x)) and z^_l = H_l(G_enc^l(G(x))).

    As in CUT's code each layer's term is the mean over its sampled locations and the layers
    are averaged (1/L instead of the sum), which only rescales the lambda weights of eq. 6.
    The same locations are drawn for input and output features (``num_patches`` S_l per
    layer; 0 = every location).
    """

    def __init__(self, temperature: float = 0.07, num_patches: int = 256):
        super().__init__()
        if num_patches < 0:
            raise ValueError('num_patches must be >= 0')
        self.num_patches = num_patches
        self.layer_loss = PatchNCELoss(temperature)

    def forward(self, source_features: Sequence[torch.Tensor],
                translated_features: Sequence[torch.Tensor],
                head: PatchProjectionHead) -> torch.Tensor:
        if len(source_features) != len(translated_features) or not source_features:
            raise ValueError('need the same (non-zero) number of source and translated layers')
        locations = sample_patch_locations(source_features, self.num_patches)
        keys = head(source_features, locations)
        queries = head(translated_features, locations)
        total = sum(self.layer_loss(q, k) for q, k in zip(queries, keys))
        return total / len(keys)
