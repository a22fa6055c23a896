"""The conditional GAN loss of Isola et al. (pix2pix, CVPR 2017), eq. 1, with the sigmoid
cross-entropy of Goodfellow et al.: real -> ones, fake -> zeros."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BinaryCrossEntropyGANLoss(nn.Module):
    """Mean sigmoid cross-entropy of discriminator logits against an all-real or all-fake
    label, averaged over every patch of a PatchGAN map.

    L_cGAN(G, D) = E_x,y[log D(x, y)] + E_x[log(1 - D(x, G(x)))]          (eq. 1)

    D maximises it: minimise BCE(D(x, y), 1) + BCE(D(x, G(x)), 0), which the paper divides
    by 2 "to slow down the rate at which D learns relative to G". G does not minimise
    log(1 - D(x, G(x))), which saturates while D wins, but maximises log D(x, G(x)) (the
    paper, section 3.3): BCE(D(x, G(x)), 1). So one module, called with the label wanted.
    BCE(l, t) = -[t log sigmoid(l) + (1 - t) log(1 - sigmoid(l))], computed from the logits
    (log-sum-exp form, no overflow for large |l|).
    """

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
