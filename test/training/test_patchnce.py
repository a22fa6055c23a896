"""PatchNCE (CUT, eq. 3 of the contrastive CycleGAN) and its projection head, by hand."""
import math

import pytest
import torch

from training.losses.patchnce import MultilayerPatchNCELoss, PatchNCELoss
from training.networks.projection_head import PatchProjectionHead, sample_patch_locations


def test_two_patches_by_hand():
    query = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    keys = torch.tensor([[[0.6, 0.8], [0.8, 0.6]]])
    # Patch 0: positive v.v+ = 0.6, negative 0.8 -> -log(e^.6 / (e^.6 + e^.8)) = log(1 + e^.2);
    # patch 1: positive 0.6, negative 0.8 again.
    expected = math.log(1 + math.exp(0.2))
    assert PatchNCELoss(temperature=1.0)(query, keys).item() == pytest.approx(expected)
    # tau scales every logit: tau = 0.5 doubles the gap.
    assert PatchNCELoss(0.5)(query, keys).item() == pytest.approx(math.log(1 + math.exp(0.4)))


def test_exact_positives_with_orthogonal_negatives_give_the_known_minimum():
    patches, tau = 4, 0.5
    features = torch.eye(patches)[None]          # unit, mutually orthogonal
    minimum = math.log(1 + (patches - 1) * math.exp(-1 / tau))   # 0.340753
    loss = PatchNCELoss(tau)(features, features)
    assert loss.item() == pytest.approx(minimum, rel=1e-6)
    assert minimum == pytest.approx(0.340753, abs=1e-6)
    # Turning the queries away from their positives only raises the loss.
    angle = torch.tensor(0.3)
    rotation = torch.eye(patches)
    rotation[:2, :2] = torch.tensor([[angle.cos(), -angle.sin()], [angle.sin(), angle.cos()]])
    assert PatchNCELoss(tau)(features @ rotation, features).item() > minimum + 0.01


def test_gradients_reach_the_query_not_the_keys():
    query = torch.nn.functional.normalize(torch.randn(2, 5, 8), dim=-1).requires_grad_()
    keys = torch.nn.functional.normalize(torch.randn(2, 5, 8), dim=-1).requires_grad_()
    PatchNCELoss()(query, keys).backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert keys.grad is None          # detached, as in CUT


def test_patch_locations_are_distinct_and_capped_by_the_map():
    torch.manual_seed(0)
    features = [torch.zeros(1, 3, 4, 5), torch.zeros(1, 3, 2, 2)]
    small, everything = sample_patch_locations(features, 6)
    assert len(set(small.tolist())) == 6 and 0 <= int(small.min()) and int(small.max()) < 20
    assert everything.tolist() == [0, 1, 2, 3]             # 4 locations < 6 asked
    assert sample_patch_locations(features, 0)[0].tolist() == list(range(20))


def test_head_projects_the_sampled_locations_to_unit_vectors():
    torch.manual_seed(0)
    head = PatchProjectionHead([3, 5], projection_dim=7)
    features = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 3)]
    locations = [torch.tensor([0, 5, 15]), torch.tensor([1, 4])]
    out = head(features, locations)
    assert [tuple(o.shape) for o in out] == [(2, 3, 7), (2, 2, 7)]
    assert torch.allclose(out[0].norm(dim=-1), torch.ones(2, 3))
    # Location 5 of a 4x4 map is row 1, column 1.
    expected = torch.nn.functional.normalize(head.mlps[0](features[0][:, :, 1, 1]), dim=-1)
    assert torch.allclose(out[0][:, 1], expected)
    with pytest.raises(ValueError, match='channels'):
        head([torch.randn(1, 4, 2, 2), features[1]], locations)


def test_multilayer_loss_averages_layers_on_shared_locations():
    torch.manual_seed(1)
    head = PatchProjectionHead([3, 5], projection_dim=6)
    source = [torch.randn(1, 3, 4, 4), torch.randn(1, 5, 2, 2)]
    translated = [torch.randn(1, 3, 4, 4), torch.randn(1, 5, 2, 2)]
    loss_fn = MultilayerPatchNCELoss(temperature=0.07, num_patches=8)
    torch.manual_seed(7)
    loss = loss_fn(source, translated, head)
    torch.manual_seed(7)
    locations = sample_patch_locations(source, 8)
    keys, queries = head(source, locations), head(translated, locations)
    expected = (PatchNCELoss(0.07)(queries[0], keys[0]) +
                PatchNCELoss(0.07)(queries[1], keys[1])) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
