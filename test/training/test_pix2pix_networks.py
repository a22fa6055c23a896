"""pix2pix networks against the paper's tables: U-Net 256 (appendix 6.1.1) and the 70x70
PatchGAN (appendix 6.1.2), skip connections, receptive field measured by gradients."""
import pytest
import torch
from torch import nn

from training.networks.patchgan import PatchGANDiscriminator, receptive_field
from training.networks.unet import UNetGenerator

torch.set_num_threads(1)


def shapes_through(module, layers, x):
    """Input and output shapes of each layer in ``layers`` during one forward pass."""
    seen = []
    hooks = [layer.register_forward_hook(
        lambda m, inputs, output: seen.append((tuple(inputs[0].shape), tuple(output.shape))))
        for layer in layers]
    with torch.no_grad():
        result = module(x)
    for hook in hooks:
        hook.remove()
    return seen, result


def test_unet_256_follows_the_papers_generator_table():
    net = UNetGenerator(3, 1, base_channels=64, num_downs=8)
    # encoder: C64-C128-C256-C512-C512-C512-C512-C512
    assert [block[0].out_channels for block in net.encoder] == [
        64, 128, 256, 512, 512, 512, 512, 512]
    # decoder (U-Net): CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128, the channels each
    # decoder layer receives (up-convolution output + mirrored skip)
    assert [block[0].in_channels for block in list(net.decoder) + [net.output]] == [
        512, 1024, 1024, 1024, 1024, 512, 256, 128]
    assert all(block[0].kernel_size == (4, 4) and block[0].stride == (2, 2)
               for block in list(net.encoder) + list(net.decoder) + [net.output])
    # Sizes 256 -> 1 -> 256 (run at 1/16 width: the sizes do not depend on the channels).
    small = UNetGenerator(3, 1, base_channels=4, num_downs=8)
    encoder, out = shapes_through(small, small.encoder, torch.zeros(1, 3, 256, 256))
    assert [o[2] for _, o in encoder] == [128, 64, 32, 16, 8, 4, 2, 1]
    assert tuple(out.shape) == (1, 1, 256, 256)
    dropouts = [any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in block)
                for block in net.decoder]
    assert dropouts == [True, True, True, False, False, False, False]   # CD, CD, CD, C...
    norms = [any(isinstance(m, nn.BatchNorm2d) for m in block) for block in net.encoder]
    assert norms == [False, True, True, True, True, True, True, False]  # not C64, not 1x1
    assert all(any(isinstance(m, nn.ReLU) for m in b) for b in net.decoder)
    assert all(any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in b)
               for b in net.encoder)
    assert isinstance(net.output[-1], nn.Tanh)


def test_unet_skips_join_mirrored_encoder_layers_for_any_channels():
    torch.manual_seed(0)
    net = UNetGenerator(1, 3, base_channels=4, num_downs=4, norm='instance').eval()
    encoded, joined = [], []
    hooks = [layer.register_forward_hook(lambda m, i, o: encoded.append(o.clone()))
             for layer in net.encoder]
    hooks += [layer.register_forward_hook(lambda m, i, o: joined.append(i[0]))
              for layer in list(net.decoder)[1:] + [net.output]]
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        y = net(x)
    for hook in hooks:
        hook.remove()
    assert y.shape == (2, 3, 32, 48) and y.abs().max() <= 1.0          # tanh
    # Decoder layer j (after the first) receives [up-conv output, encoder layer n - 1 - j].
    for j, received in enumerate(joined, start=1):
        skip = encoded[4 - 1 - j]
        assert torch.equal(received[:, received.shape[1] - skip.shape[1]:], skip)


def test_patchgan_70_gives_a_30x30_map_for_256x256():
    net = PatchGANDiscriminator(4, base_channels=64, n_layers=3).eval()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    seen, out = shapes_through(net, convs, torch.zeros(1, 4, 256, 256))
    # C64-C128-C256-C512, then 1 channel: 256 -> 128 -> 64 -> 32 -> 31 -> 30
    assert [(o[1], o[2]) for _, o in seen] == [(64, 128), (128, 64), (256, 32), (512, 31),
                                               (1, 30)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert tuple(out.shape) == (1, 1, 30, 30) and net.output_size(256, 256) == (30, 30)
    assert not any(isinstance(m, nn.BatchNorm2d) and m.num_features == 64
                   for m in net.modules())                               # no norm on C64
    assert net.output_size(96, 128) == (10, 14)


@pytest.mark.parametrize('n_layers,expected', [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_measured_by_gradients(n_layers, expected):
    assert receptive_field(n_layers) == expected
    torch.manual_seed(0)
    net = PatchGANDiscriminator(1, base_channels=2, n_layers=n_layers).eval()
    x = torch.randn(1, 1, 160, 160, requires_grad=True)
    logits = net(x)
    h, w = logits.shape[2:]
    logits[0, 0, h // 2, w // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(dim=0)).flatten()
    assert int(rows[-1] - rows[0]) + 1 == expected
    assert int(cols[-1] - cols[0]) + 1 == expected


def test_norm_choices_for_reuse():
    instance = PatchGANDiscriminator(3, base_channels=8, norm='instance')
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in instance.modules()) == 3
    plain = PatchGANDiscriminator(3, base_channels=8, norm='none')
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in plain.modules())
    with pytest.raises(ValueError, match='norm'):
        PatchGANDiscriminator(3, norm='group')
    with pytest.raises(ValueError, match='norm'):
        UNetGenerator(3, 1, norm='layer')
