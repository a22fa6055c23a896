"""The Depth Prediction Network (training/networks/dpn.py): the shape table of its docstring,
the factorised residual blocks, the attention module and the disparity heads."""
import pytest
import torch
from torch import nn

from training.networks.dpn import (ChannelSpatialAttention, DepthPredictionNetwork,
                                   DpnArchitecture, FeatureResidualBlock, LeftDisparityNetwork)

# (module, channels, width, height) for the paper's 512x256 input at width_scale 1.
PAPER_TABLE = [
    ('stem', 64, 256, 128), ('group1', 64, 128, 64), ('group2', 128, 64, 32),
    ('group3', 256, 32, 16), ('group4', 512, 16, 8), ('attention', 512, 16, 8),
    ('upconv1', 256, 32, 16), ('upconv2', 128, 64, 32), ('subpixel1', 64, 128, 64),
    ('subpixel2', 32, 256, 128), ('subpixel3', 16, 512, 256),
]


@pytest.fixture(scope='module')
def paper_network():
    torch.manual_seed(0)
    return DepthPredictionNetwork(DpnArchitecture(256, 512, 1.0)).eval()


def test_layer_shapes_follow_the_table_at_512x256(paper_network):
    shapes = {}
    hooks = [getattr(paper_network, name).register_forward_hook(
        lambda module, inputs, output, name=name: shapes.__setitem__(name, output.shape))
        for name, *_ in PAPER_TABLE]
    with torch.no_grad():
        disparities = paper_network(torch.randn(1, 3, 256, 512))
    for hook in hooks:
        hook.remove()
    for name, channels, width, height in PAPER_TABLE:
        assert tuple(shapes[name]) == (1, channels, height, width), name
    # Four scales, finest first, two channels (left, right disparity) each.
    assert [tuple(d.shape) for d in disparities] == [
        (1, 2, 256, 512), (1, 2, 128, 256), (1, 2, 64, 128), (1, 2, 32, 64)]
    assert DpnArchitecture(256, 512).output_sizes() == [(256, 512), (128, 256), (64, 128),
                                                        (32, 64)]


def test_disparities_lie_in_zero_to_max_disparity():
    torch.manual_seed(2)
    net = DepthPredictionNetwork(DpnArchitecture(64, 128, 0.125, max_disparity=0.2)).eval()
    with torch.no_grad():
        disparities = net(10 * torch.randn(1, 3, 64, 128))
    for d in disparities:
        assert 0.0 <= float(d.min()) and float(d.max()) <= 0.2


def test_residual_groups_use_only_1x3_and_3x1_convolutions(paper_network):
    kernels = {tuple(m.kernel_size) for name, m in paper_network.named_modules()
               if name.startswith('group') and isinstance(m, nn.Conv2d)
               and '.skip.' not in name}
    assert kernels == {(1, 3), (3, 1)}
    blocks = [m for name, m in paper_network.named_modules()
              if isinstance(m, FeatureResidualBlock) and name.startswith('group')]
    assert len(blocks) == 8                                  # ResNet18: 4 groups x 2 blocks
    # Scale pyramid: groups 2-4 also take the image (3 channels) at their resolution.
    assert [paper_network.group2[0].conv1.horizontal.in_channels,
            paper_network.group3[0].conv1.horizontal.in_channels,
            paper_network.group4[0].conv1.horizontal.in_channels] == [64 + 3, 128 + 3, 256 + 3]
    assert paper_network.stem[0].kernel_size == (7, 7) and paper_network.stem[0].stride == (2, 2)


def test_residual_block_with_zero_convolutions_is_relu_of_its_input():
    block = FeatureResidualBlock(4, 4).eval()
    for conv in (block.conv1, block.conv2):
        nn.init.zeros_(conv.horizontal.weight)
    x = torch.randn(1, 4, 5, 6)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_attention_with_zero_weights_scales_by_one_quarter():
    attention = ChannelSpatialAttention(8, reduction=4)
    for module in attention.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    x = torch.randn(2, 8, 3, 5)
    # channel weight sigmoid(0 + 0) = 1/2, then spatial weight sigmoid(0) = 1/2
    torch.testing.assert_close(attention(x), x / 4)


def test_exported_network_outputs_the_left_full_resolution_map():
    torch.manual_seed(1)
    net = DepthPredictionNetwork(DpnArchitecture(64, 128, 0.125)).eval()
    image = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(LeftDisparityNetwork(net)(image), net(image)[0][:, :1])


@pytest.mark.parametrize('size', [(100, 512), (256, 500), (16, 512)])
def test_sizes_not_multiple_of_32_are_refused(size):
    with pytest.raises(ValueError, match='multiples of 32'):
        DpnArchitecture(*size)
