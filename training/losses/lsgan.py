"""Least-squares GAN losses (Mao et al. 2017), which CycleGAN, CUT and the contrastive
CycleGAN of Suarez, Carpio and Sappa use instead of the cross-entropy GAN loss: they keep
penalising fakes that are classified correctly but lie far from the real data, which gives
steadier gradients.

With the labels a = 0 (fake) and b = c = 1 (real), on the discriminator's score maps (a
PatchGAN scores every receptive field; the expectations are means over images and patches):

- eq. 4, discriminator: L_D = E_y[(D(y) - 1)^2] + E_x[D(G(x))^2]
- eq. 5, generator:     L_G = E_x[(D(G(x)) - 1)^2]

CycleGAN's code halves L_D when stepping D ("slows down the rate at which D learns relative
to G"); the method does that, not the loss.
"""
from __future__ import annotations

import torch
from torch import nn

REAL_LABEL = 1.0
FAKE_LABEL = 0.0


class LSGANDiscriminatorLoss(nn.Module):
    """Eq. 4: real scores pulled to 1, fake scores (from detached fakes) to 0."""

    def forward(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        # E_y[(D(y) - 1)^2] + E_x[(D(G(x)) - 0)^2]
        return ((real_scores - REAL_LABEL) ** 2).mean() + \
            ((fake_scores - FAKE_LABEL) ** 2).mean()


class LSGANGeneratorLoss(nn.Module):
    """Eq. 5: the generator wants its fakes scored as real."""

    def forward(self, fake_scores: torch.Tensor) -> torch.Tensor:
        # E_x[(D(G(x)) - 1)^2]
        return ((fake_scores - REAL_LABEL) ** 2).mean()
