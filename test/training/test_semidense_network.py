"""SemiDenseNet (Makarov et al.): one 2x downsampling, pixel shuffle back, residual and
projection blocks with ELU, dilations, dropout, fully convolutional; a correction of the
nearest fill in scale-free log depth (starts as the fill, known depths exact, output scales
with the input); VGG16 in torchvision's layout."""
import pytest
import torch
from torch import nn

from training.networks.semidense_net import (ProjectionBlock, ResidualBlock,
                                             SemiDenseArchitecture, SemiDenseNet,
                                             frame_log_mean)
from training.networks.vgg16 import (LAYER_NAMES, VGG16Features, load_vgg16_features)

torch.set_num_threads(1)


@pytest.mark.parametrize('size', [(2, 2), (24, 32), (30, 46), (120, 160), (64, 34)])
def test_output_size_equals_input_size(size):
    net = SemiDenseNet(SemiDenseArchitecture(in_channels=3)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, *size) + 0.1)
    assert out.shape == (1, 1, *size)


def test_odd_sizes_and_other_channel_counts_are_refused():
    with pytest.raises(ValueError, match='divisible by 2'):
        SemiDenseNet()(torch.rand(1, 3, 31, 32))
    with pytest.raises(ValueError, match='in_channels must be 3'):
        SemiDenseArchitecture(in_channels=2)
    with pytest.raises(ValueError, match='activation'):
        SemiDenseArchitecture(activation='gelu')


def fill_input(seed=0, size=(24, 32), channels=4, density=0.1):
    """A valid input: nearest depth 1-9 m, a 0/1 mask, distances, intensity."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, *size, generator=generator)
    x[:, 0] = 1.0 + 8.0 * x[:, 0]
    x[:, 1] = (x[:, 1] < density).float()
    x[:, 2] = 30.0 * x[:, 2]
    return x


def test_untrained_network_is_the_nearest_fill_and_known_depths_are_exact():
    net = SemiDenseNet(SemiDenseArchitecture(in_channels=4)).eval()
    x = fill_input()
    with torch.no_grad():
        assert torch.allclose(net(x), x[:, 0:1], rtol=1e-6)   # zero head: f = 0
        randomise(net)
        out = net(x)
    known = x[:, 1:2] > 0.5
    assert torch.equal(out[known], x[:, 0:1][known])            # exact, not approximately
    assert not torch.allclose(out[~known], x[:, 0:1][~known])


def test_frame_log_mean_and_scale_equivariance():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[2.0, 8.0], [100.0, 1.0]])
    x[0, 1] = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    # c = (log 2 + log 8) / 2 = log 4: the geometric mean of the known depths
    assert frame_log_mean(x).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    net = randomise(SemiDenseNet(SemiDenseArchitecture(in_channels=4))).eval()
    x = fill_input(1, (40, 48))
    doubled = x.clone()
    doubled[:, 0] *= 2.0
    with torch.no_grad():
        assert torch.allclose(net(doubled), 2.0 * net(x), rtol=1e-4)


def test_layer_table_of_the_paper():
    arch = SemiDenseArchitecture(in_channels=4, stem_channels=16, channels=32,
                                 dilations=(1, 2, 4, 8))
    net = SemiDenseNet(arch)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    # Every convolution is 3x3 except the projection's 1x1 identity path.
    assert sorted({m.kernel_size for m in convs}) == [(1, 1), (3, 3)]
    assert [m for m in convs if m.kernel_size == (1, 1)] == [net.down.projection]
    # One downsampling stage: exactly the projection block's stride-2 convolutions.
    strided = [m for m in convs if m.stride != (1, 1)]
    assert strided == [net.down.conv1, net.down.projection] and strided[0].stride == (2, 2)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample,
                                  nn.ConvTranspose2d)) for m in net.modules())
    # Residual blocks with increasing dilation, one pixel shuffle x2 at the end.
    assert [b.conv1.dilation[0] for b in net.body] == [1, 2, 4, 8]
    assert all(isinstance(b, ResidualBlock) for b in net.body)
    assert isinstance(net.down, ProjectionBlock)
    assert net.shuffle.upscale_factor == 2 and net.head.out_channels == 4
    assert net.stem[0].in_channels == 4 and net.dropout.p == 0.5
    # ELU everywhere but after the last convolution (the head is linear).
    assert sum(isinstance(m, nn.ELU) for m in net.modules()) == 1 + 1 + 4
    features = torch.rand(1, 32, 5, 5) - 3.0         # all negative: ELU would floor at -1
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(-5.0)
        assert torch.equal(net.shuffle(net.head(features)), torch.full((1, 1, 10, 10), -5.0))
    # The fast variants swap every ELU for a (leaky) ReLU and nothing else.
    for activation, module in (('relu', nn.ReLU), ('leaky_relu', nn.LeakyReLU)):
        fast = SemiDenseNet(SemiDenseArchitecture(in_channels=4, activation=activation))
        assert sum(isinstance(m, module) for m in fast.modules()) == 1 + 1 + 4
        assert not any(isinstance(m, nn.ELU) for m in fast.modules())
        assert [p.shape for p in fast.parameters()] == [p.shape for p in net.parameters()]


def randomise(module):
    """Random weights everywhere (blocks start with their last convolution at zero)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    return module


def test_blocks_start_as_identity_then_compute_their_equations():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 9, 9)
    elu = nn.functional.elu
    assert torch.equal(ResidualBlock(4, dilation=2)(x), elu(x))       # zero-initialised
    block = randomise(ResidualBlock(4, dilation=2))
    expected = elu(x + block.conv2(elu(block.conv1(x))))
    assert torch.allclose(block(x), expected)
    assert block.conv1.padding == (2, 2)
    projection = randomise(ProjectionBlock(4, 6, stride=2))
    expected = elu(projection.projection(x) + projection.conv2(elu(projection.conv1(x))))
    out = projection(x)
    assert out.shape == (1, 6, 5, 5) and torch.allclose(out, expected)


def test_receptive_field_spans_about_130_pixels():
    # Gradient of one output pixel w.r.t. the input: non-zero over the receptive field.
    torch.manual_seed(0)
    net = randomise(SemiDenseNet(SemiDenseArchitecture(dilations=(1, 2, 4, 8), dropout=0.0)))
    # No known pixel, and the mask channel left out: the frame's mean log depth c (the only
    # global term) passes no gradient to the depths and distances then.
    x = fill_input(2, (200, 200), channels=3, density=0.0).requires_grad_(True)
    net(x)[0, 0, 100, 100].backward()
    columns = torch.nonzero(x.grad[0, [0, 2]].abs().sum(dim=(0, 1))).flatten()
    width = int(columns.max() - columns.min() + 1)
    assert 125 <= width <= 140


def test_vgg16_layout_matches_torchvision_and_loads_a_state_dict(tmp_path):
    assert LAYER_NAMES[:9] == ('conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1',
                               'conv2_1', 'relu2_1', 'conv2_2', 'relu2_2')
    assert len(LAYER_NAMES) == 31 and LAYER_NAMES[30] == 'pool5'
    full = VGG16Features('pool5')
    keys = list(full.state_dict())
    # torchvision vgg16().features: 13 convolutions at these indices.
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert keys == [f'features.{i}.{p}' for i in conv_indices for p in ('weight', 'bias')]
    assert full.state_dict()['features.28.weight'].shape == (512, 512, 3, 3)
    # A random state dict in torchvision's layout (with classifier keys) loads into relu2_2.
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) for k, v in full.state_dict().items()
             if int(k.split('.')[1]) < 10}                  # blocks 1-2 are enough here
    state['classifier.6.bias'] = torch.zeros(1000)     # ignored: not a feature layer
    path = tmp_path / 'vgg16.pth'
    torch.save(state, path)
    features = load_vgg16_features(path, 'relu2_2')
    assert torch.equal(features.features[7].weight, state['features.7.weight'])
    assert len(features.features) == 9 and not features.training
    assert not any(p.requires_grad for p in features.parameters())
    out = features(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 128, 16, 16) and (out >= 0).all()
    torch.save({'features.0.weight': state['features.0.weight']}, tmp_path / 'partial.pth')
    with pytest.raises(ValueError, match="partial.pth' lack .*features.0.bias"):
        load_vgg16_features(tmp_path / 'partial.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        load_vgg16_features(tmp_path / 'nowhere.pth')
