"""Tone invariance: a safeguard against "brighter is nearer" in unpaired gray -> depth
translation (issue 21). Not in the contrastive CycleGAN paper; an option of its objective
(``lambda_tone_invariance``, default 0 = the paper's eq. 6).

Unpaired, nothing tells G1 that depth is not a remap of the gray level, and the cycle and
PatchNCE terms reward keeping the input's content: the demo models learnt exactly that
remap (rank correlation 0.84 with the luma on a real image). Depth does not change when the
light, the exposure or the tone curve does, so G1 is asked to give the same map for the
image and for a re-toned copy of it:

    L_tone(G1) = E_x,T ||G1(x) - G1(T(x))||_1

T draws, per image: a gamma in [1/max_gamma, max_gamma], a smooth multiplicative
illumination field (log-normal, a 3x3 grid of log gains with standard deviation
``illumination_std`` interpolated bicubically over the image), and with probability
``inversion_probability`` the negative (1 - u). A global monotone remap alone would leave a
loophole: a rank-based (histogram-equalised) brightness map is invariant to it; the
illumination field and the negative close it. Both branches get gradients (the mean of the
two maps is the target of neither), as in consistency regularisation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def random_tone_remap(x: torch.Tensor, max_gamma: float = 2.5, illumination_std: float = 0.5,
                      inversion_probability: float = 0.5,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) images in [-1, 1] -> re-toned copies in [-1, 1] (see the module
    docstring); the same T on every channel of an image, a new T per image."""
    b, _, h, w = x.shape
    kw = {'device': x.device, 'generator': generator}
    u = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    log_gamma = (torch.rand(b, 1, 1, 1, **kw) * 2.0 - 1.0) * math.log(max_gamma)
    u = u.clamp_min(1e-6) ** log_gamma.exp()
    log_gain = torch.randn(b, 1, 3, 3, **kw) * illumination_std
    field = F.interpolate(log_gain, size=(h, w), mode='bicubic', align_corners=True).exp()
    u = (u * field).clamp(0.0, 1.0)
    invert = torch.rand(b, 1, 1, 1, **kw) < inversion_probability
    u = torch.where(invert, 1.0 - u, u)
    return u * 2.0 - 1.0


class ToneInvarianceLoss(nn.Module):
    """E ||G1(x) - G1(T(x))||_1 given the two maps (the caller runs G1 on both)."""

    def forward(self, translated: torch.Tensor, translated_retoned: torch.Tensor
                ) -> torch.Tensor:
        return (translated - translated_retoned).abs().mean()
