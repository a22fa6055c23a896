"""Cycle-consistency loss (Zhu et al. 2017), eq. 1 of the contrastive CycleGAN of Suarez,
Carpio and Sappa: translating to the other domain and back must return the input."""
from __future__ import annotations

import torch
from torch import nn


class CycleConsistencyLoss(nn.Module):
    """L_cyc(G1, G2) = E_x ||x - G2(G1(x))||_1 + E_y ||y - G1(G2(y))||_1  (eq. 1).

    Each expectation is the mean absolute difference per pixel and channel (as nn.L1Loss);
    reconstructions have their input's channels by construction (G2 maps back to X).
    """

    def forward(self, x: torch.Tensor, reconstructed_x: torch.Tensor, y: torch.Tensor,
                reconstructed_y: torch.Tensor) -> torch.Tensor:
        for real, rec in ((x, reconstructed_x), (y, reconstructed_y)):
            if real.shape != rec.shape:
                raise ValueError(f'reconstruction {tuple(rec.shape)} differs from its input '
                                 f'{tuple(real.shape)}')
        # ||x - G2(G1(x))||_1 + ||y - G1(G2(y))||_1
        return (x - reconstructed_x).abs().mean() + (y - reconstructed_y).abs().mean()
