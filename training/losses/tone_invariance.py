"""Tone invariance: a safeguard against "brighter is nearer" in unpaired gray -> depth
translation (issue 21). Not in the contrastive CycleGAN paper; an option of its objective
(``lambda_tone_invariance``, default 0 = the paper's eq. 6).

Unpaired, nothing tells G1 that depth is not a remap of the gray level, and the cycle and
PatchNCE terms reward keeping the input's content: the demo models learnt exactly that
remap (rank correlation 0.84 with the luma on a real image). Depth does not change when the
light, the exposure or the tone curve does, so G1 is asked to give the same map for the
image and for a re-toned copy of it:

    L_tone(G1) = E_x,T ||G1(x) - G1(T(x))||_1

T draws, per image, a random tone curve, piecewise linear through ``segments`` + 1 knots
at evenly spaced input levels whose output levels are uniform in [0, 1] (so it may be
rising, falling or neither), then a smooth multiplicative illumination field (log-normal: a
3x3 grid of log gains with standard deviation ``illumination_std``, interpolated bicubically
over the image). A curve that is not monotone cannot be undone from T(x), so G1 cannot meet
the term by first normalising the tone and then remapping brightness; edges and shapes
survive T, brightness does not. Both branches get gradients (neither map is the other's
fixed target), as in consistency regularisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def random_tone_remap(x: torch.Tensor, segments: int = 4, illumination_std: float = 0.5,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) images in [-1, 1] -> re-toned copies in [-1, 1] (see the module
    docstring); the same T on every channel of an image, a new T per image. segments = 0
    keeps the tone curve the identity."""
    b, _, h, w = x.shape
    kw = {'device': x.device, 'generator': generator}
    u = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    if segments > 0:
        knots = torch.rand(b, segments + 1, **kw)          # output level at knot k / segments
        position = u.flatten(1) * segments                 # (B, C * H * W), in [0, segments]
        left = position.floor().clamp(max=segments - 1)
        low = knots.gather(1, left.long())
        high = knots.gather(1, left.long() + 1)
        u = (low + (position - left) * (high - low)).view_as(u)
    log_gain = torch.randn(b, 1, 3, 3, **kw) * illumination_std
    field = F.interpolate(log_gain, size=(h, w), mode='bicubic', align_corners=True).exp()
    u = (u * field).clamp(0.0, 1.0)
    return u * 2.0 - 1.0


class ToneInvarianceLoss(nn.Module):
    """E ||G1(x) - G1(T(x))||_1 given the two maps (the caller runs G1 on both)."""

    def forward(self, translated: torch.Tensor, translated_retoned: torch.Tensor
                ) -> torch.Tensor:
        return (translated - translated_retoned).abs().mean()
