"""The Eigen et al. network reproduces the layer sizes of the paper's Fig. 1 table."""
import pytest
import torch

from training.networks.eigen import (CoarseNetwork, EigenArchitecture, EigenDepthNetwork,
                                     FineNetwork)

# Paper, Fig. 1, NYU Depth row: width x height per layer for a 304x228 input, and the
# channel counts of the figure (fine 1: 63 image features + the coarse map).
PAPER_NYU = {                       # layer: (channels or units, height, width)
    'coarse1': (96, 27, 37),        # 1:8
    'coarse2': (256, 13, 18),       # 1:16
    'coarse3': (384, 13, 18),
    'coarse4': (384, 13, 18),
    'coarse5': (256, 6, 8),         # 1:32
    'coarse6': (4096,),             # fully connected
    'coarse7': (4070,),             # fully connected, = 74 x 55 output units
    'fine1': (63, 55, 74),          # 1:4
    'fine2': (64, 55, 74),
    'fine3': (1, 55, 74),
}


def _layer_shapes(arch: EigenArchitecture) -> dict[str, tuple[int, ...]]:
    """Run the paper-size network on the meta device (shapes only, no memory, no FLOPs)."""
    with torch.device('meta'):
        coarse, fine = CoarseNetwork(arch), FineNetwork(arch)
        network = EigenDepthNetwork(coarse, fine).eval()
        image = torch.empty(1, 3, arch.input_height, arch.input_width)
    shapes = {}
    for name in PAPER_NYU:
        layer = getattr(coarse, name, None) or getattr(fine, name)
        layer.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
    output = network(image)
    shapes['output'] = tuple(output.shape)
    return shapes


def test_paper_size_table_for_nyu_304x228():
    shapes = _layer_shapes(EigenArchitecture(input_height=228, input_width=304))
    assert {k: shapes[k] for k in PAPER_NYU} == PAPER_NYU
    assert shapes['output'] == (1, 1, 55, 74)


def test_architecture_predicts_the_table_without_running_it():
    arch = EigenArchitecture(input_height=228, input_width=304)
    assert arch.coarse_sizes() == {'coarse1': (27, 37), 'coarse2': (13, 18),
                                   'coarse3': (13, 18), 'coarse4': (13, 18),
                                   'coarse5': (6, 8)}
    assert arch.output_size == (55, 74)


def test_kitti_input_keeps_the_quarter_resolution_output():
    # 576x172 KITTI crops: the same layers give coarse 1 at 71x20 and an output at 1:4.
    arch = EigenArchitecture(input_height=172, input_width=576)
    assert arch.coarse_sizes()['coarse1'] == (20, 71)
    assert arch.coarse_sizes()['coarse5'] == (4, 17)
    shapes = _layer_shapes(arch)
    assert shapes['output'] == (1, 1, *arch.output_size) == (1, 1, 41, 142)


def test_width_scale_shrinks_channels_but_not_sizes():
    shapes = _layer_shapes(EigenArchitecture(width_scale=0.25, fc_units=256))
    assert shapes['coarse1'] == (24, 27, 37)
    assert shapes['coarse5'] == (64, 6, 8)
    assert shapes['coarse6'] == (256,)
    assert shapes['fine1'] == (15, 55, 74) and shapes['fine2'] == (16, 55, 74)


def test_coarse_map_is_the_64th_fine_feature_and_starts_at_the_initial_depth():
    arch = EigenArchitecture(input_height=72, input_width=96, width_scale=0.125, fc_units=8,
                             initial_depth=2.0)
    torch.manual_seed(0)
    coarse, fine = CoarseNetwork(arch).eval(), FineNetwork(arch).eval()
    with torch.no_grad():
        coarse.coarse7.weight.zero_()      # coarse output = its bias = ln 2 everywhere
        image = torch.randn(2, 3, 72, 96)
        coarse_map = coarse(image)
        assert torch.allclose(coarse_map, torch.full((2, 1, 16, 22), torch.log(
            torch.tensor(2.0))))
        seen = []
        fine.fine2[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        fine_only = fine(image, coarse_map)
        # fine 2's input: the 7 fine 1 features, then the coarse map as the last channel.
        assert seen[0].shape == (2, 8, 16, 22)
        assert torch.equal(seen[0][:, -1:], coarse_map)
        assert torch.equal(EigenDepthNetwork(coarse, fine, use_fine=False)(image), coarse_map)
        assert torch.equal(EigenDepthNetwork(coarse, fine, use_fine=True)(image), fine_only)


def test_too_small_input_is_rejected_with_the_reason():
    with pytest.raises(ValueError, match='too small'):
        EigenArchitecture(input_height=40, input_width=60)
