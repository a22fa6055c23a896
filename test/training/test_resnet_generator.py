"""ResNet generator: CycleGAN's 256x256 shape and parameter table, reflection padding,
encoder features, errors."""
import pytest
import torch
from torch import nn

from training.networks.resnet_generator import ReflectionPad, ResnetGenerator

torch.set_num_threads(1)


def test_cyclegan_256_generator_table():
    # c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3: CycleGAN prints 11.378 M parameters.
    with torch.device('meta'):    # shapes and counts without computing anything
        generator = ResnetGenerator(3, 3, base_channels=64, n_blocks=9)
        image = torch.empty(1, 3, 256, 256)
        features = generator.encode(image, generator.encoder_layers)
        output = generator(image)
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179
    shapes = {name: tuple(f.shape[1:]) for name, f in zip(generator.encoder_layers, features)}
    assert shapes == {'input': (3, 256, 256), 'stem': (64, 256, 256), 'down1': (128, 128, 128),
                      'down2': (256, 64, 64),
                      **{f'block{i}': (256, 64, 64) for i in range(1, 10)}}
    assert tuple(output.shape) == (1, 3, 256, 256)


def test_any_channels_and_feature_channels():
    generator = ResnetGenerator(1, 3, base_channels=8, n_blocks=2)
    assert generator.encoder_layers == ('input', 'stem', 'down1', 'down2', 'block1', 'block2')
    assert [generator.feature_channels(n) for n in generator.encoder_layers] == \
        [1, 8, 16, 32, 32, 32]
    out = generator(torch.randn(2, 1, 16, 12))
    assert out.shape == (2, 3, 16, 12) and out.abs().max() <= 1.0     # tanh


def test_reflection_pad_equals_torch():
    x = torch.randn(2, 3, 7, 9)
    for p in (1, 3):
        assert torch.equal(ReflectionPad(p)(x), nn.ReflectionPad2d(p)(x))
    with pytest.raises(ValueError, match='larger than 3'):
        ReflectionPad(3)(torch.randn(1, 1, 3, 8))


def test_encoder_features_are_the_forward_pass_stages():
    torch.manual_seed(0)
    generator = ResnetGenerator(1, 1, base_channels=4, n_blocks=2).eval()
    image = torch.randn(1, 1, 8, 8)
    last, first = generator.encode(image, ['block2', 'input'])
    assert first is image
    assert torch.allclose(generator.decoder(last), generator(image))


def test_errors_name_the_problem():
    generator = ResnetGenerator(1, 1, base_channels=4, n_blocks=1)
    with pytest.raises(ValueError, match="no encoder layer 'block5'"):
        generator.encode(torch.randn(1, 1, 8, 8), ['block5'])
    with pytest.raises(ValueError, match='not divisible by 4'):
        generator(torch.randn(1, 1, 10, 8))
    with pytest.raises(ValueError, match=r'expects \(B, 1, H, W\)'):
        generator(torch.randn(1, 3, 8, 8))
