"""Identity loss, eq. 2 of the contrastive CycleGAN of Suarez, Carpio and Sappa, and the
channel matching that lets it (and PatchNCE) work between domains of different channels.

The paper writes the identity term as

    L_id(G1, G2) = E_x ||x - G1(x)||_1 + E_y ||y - G2(y)||_1          (eq. 2)

i.e. each generator is fed its *own* input domain and asked to change it little. Zhu et al.'s
CycleGAN identity term instead feeds each generator the domain it *produces*:
E_y ||y - G1(y)||_1 + E_x ||x - G2(x)||_1. The method chooses which images it passes
(``identity_inputs: paper | target`` in training/models/two_domain.py); this module computes
the two L1 distances it is given.

Channel matching (``match_channels``): G1 maps C_X -> C_Y channels. Where the compared or
fed images have other channel counts (RGB <-> NIR: 3 vs 1), a 1-channel image is repeated to
C channels and a C-channel image becomes 1 channel by the mean of its channels; other
mismatches (e.g. 3 vs 2) are an error. Gray <-> depth is 1 <-> 1: nothing changes.
"""
from __future__ import annotations

import torch
from torch import nn


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, channels, H, W): unchanged, 1 -> C repeated, or C -> 1 mean."""
    have = image.shape[1]
    if have == channels:
        return image
    if have == 1:
        return image.expand(-1, channels, -1, -1)
    if channels == 1:
        return image.mean(dim=1, keepdim=True)
    raise ValueError(f'cannot match {have} channels to {channels} (only equal counts, 1 -> C '
                     'and C -> 1 are defined)')


class IdentityLoss(nn.Module):
    """E ||a - G(a')||_1 summed over the generators (eq. 2): each output is compared with
    its reference (x for G1(x) in the paper's form, y for G1(y) in Zhu et al.'s), after
    match_channels brings it to the reference's channels. The G2 pair may be omitted
    (one-sided, CUT-style training has no G2)."""

    def forward(self, g1_reference: torch.Tensor, g1_output: torch.Tensor,
                g2_reference: torch.Tensor | None = None,
                g2_output: torch.Tensor | None = None) -> torch.Tensor:
        pairs = [(g1_reference, g1_output)]
        if (g2_reference is None) != (g2_output is None):
            raise ValueError('give both the G2 reference and output, or neither')
        if g2_reference is not None:
            pairs.append((g2_reference, g2_output))
        total = g1_reference.new_zeros(())
        for reference, output in pairs:
            output = match_channels(output, reference.shape[1])
            if output.shape != reference.shape:
                raise ValueError(f'identity output {tuple(output.shape)} differs from its '
                                 f'reference {tuple(reference.shape)}')
            # ||a - G(a')||_1 as a mean over pixels and channels
            total = total + (reference - output).abs().mean()
        return total
