"""Contrastive CycleGAN method: which networks each step updates, eq. 6, unpaired batches,
the depth normalisation shared with the runtime, image history and learning-rate schedule."""
import math

import numpy as np
import pytest
import torch

import fake_depth_scenes
from depth_nodes.core.postprocess import output_to_metres
from depth_nodes.core.preprocess import image_to_tensor
from training.models import METHODS, TrainContext
from training.models.cyclegan import CycleGANConfig, CycleGANMethod, normalize_depth
from training.models.two_domain import (ImageHistory, TranslationConfig, UnpairedDomains,
                                        random_tone_remap)

torch.set_num_threads(1)
SMALL = dict(input_height=32, input_width=32, generator_channels=4, generator_blocks=2,
             discriminator_channels=4, nce_layers=('input', 'down1', 'block2'),
             nce_patches=8, projection_dim=8)


def method(**options):
    torch.manual_seed(0)
    return METHODS['cyclegan'](CycleGANConfig(**{**SMALL, **options}))


def rooms(size=4):
    return fake_depth_scenes.FakeRooms(size=size, height=32, width=32)


def unpaired_batch(m, seed=0):
    np.random.seed(seed)
    pairs = m.training_dataset(rooms(), seed=0)
    return m.make_batch([pairs[0]])


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module):
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_generator_step_moves_generators_and_heads_not_discriminators():
    m = method()
    t = m.translation
    batch = unpaired_batch(m)
    nets = m.networks()
    assert set(nets) == {'generator_xy', 'generator_yx', 'discriminator_x', 'discriminator_y',
                         'projection_x', 'projection_y'}
    before = {name: snapshot(net) for name, net in nets.items()}
    logs, fakes = t.generator_step(batch['x'], batch['y'])
    for name in ('generator_xy', 'generator_yx', 'projection_x', 'projection_y'):
        assert changed(before[name], nets[name]), name
    for name in ('discriminator_x', 'discriminator_y'):
        assert not changed(before[name], nets[name])
        assert all(p.grad is None for p in nets[name].parameters())   # no gradient at all
        assert all(p.requires_grad for p in nets[name].parameters())  # restored for D's step
    assert set(logs) == {'gan_y', 'gan_x', 'nce_x', 'nce_y', 'cycle', 'identity',
                         'generator_total'}


def test_discriminator_step_moves_discriminators_only():
    m = method()
    t = m.translation
    batch = unpaired_batch(m)
    _, fakes = t.generator_step(batch['x'], batch['y'])
    nets = m.networks()
    generator_side = ('generator_xy', 'generator_yx', 'projection_x', 'projection_y')
    before = {name: snapshot(net) for name, net in nets.items()}
    grads = {name: [None if p.grad is None else p.grad.clone() for p in nets[name].parameters()]
             for name in generator_side}
    logs = t.discriminator_step(batch['x'], batch['y'], fakes)
    assert set(logs) == {'discriminator_x', 'discriminator_y'}
    for name in generator_side:
        assert not changed(before[name], nets[name])
        for old, p in zip(grads[name], nets[name].parameters()):   # D's backward adds nothing
            assert (old is None and p.grad is None) or torch.equal(old, p.grad)
    for name in ('discriminator_x', 'discriminator_y'):
        weights = {k for k in before[name] if k.endswith('weight')}
        assert weights <= changed(before[name], nets[name])


def test_total_is_the_weighted_sum_of_eq_6():
    weights = dict(lambda_gan=2.0, lambda_nce_x=3.0, lambda_nce_y=5.0, lambda_cycle=7.0,
                   lambda_identity=11.0)
    m = method(**weights)
    batch = unpaired_batch(m)
    x, y = batch['x'], batch['y']
    with torch.no_grad():
        total, terms, fakes = m.translation.generator_losses(x, y)
    expected = (2 * (terms['gan_x'] + terms['gan_y']) + 3 * terms['nce_x'] +
                5 * terms['nce_y'] + 7 * terms['cycle'] + 11 * terms['identity'])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    # eq. 2 as the paper writes it: ||x - G1(x)||_1 + ||y - G2(y)||_1.
    identity = (x - fakes['fake_y']).abs().mean() + (y - fakes['fake_x']).abs().mean()
    assert terms['identity'].item() == pytest.approx(identity.item(), rel=1e-6)
    # eq. 1 with the same generators.
    g1, g2 = m.translation.generator_xy, m.translation.generator_yx
    with torch.no_grad():
        cycle = (x - g2(fakes['fake_y'])).abs().mean() + (y - g1(fakes['fake_x'])).abs().mean()
    assert terms['cycle'].item() == pytest.approx(cycle.item(), rel=1e-6)


def test_baselines_are_configurations_of_the_same_code():
    plain = method(lambda_nce_x=0.0, lambda_nce_y=0.0)
    assert set(plain.networks()) == {'generator_xy', 'generator_yx', 'discriminator_x',
                                     'discriminator_y'}
    logs = plain.training_step(unpaired_batch(plain), 0)
    assert 'nce_x' not in logs and 'nce_y' not in logs and math.isfinite(logs['cycle'])

    cut = method(one_sided=True, lambda_cycle=0.0, lambda_identity=0.0)
    assert set(cut.networks()) == {'generator_xy', 'discriminator_y', 'projection_x'}
    logs = cut.training_step(unpaired_batch(cut), 0)
    assert set(logs) == {'gan_y', 'nce_x', 'nce_y', 'generator_total', 'discriminator_y', 'lr'}
    with pytest.raises(ValueError, match='one_sided'):
        CycleGANConfig(**SMALL, one_sided=True)          # the cycle term needs G2


def test_translation_core_handles_domains_of_different_channels():
    # The NIR (1) -> RGB (3) case of the cross-modal method, on the same core.
    from training.models.two_domain import CycleTranslation
    torch.manual_seed(0)
    config = TranslationConfig(x_channels=1, y_channels=3, generator_channels=4,
                               generator_blocks=1, discriminator_channels=4,
                               nce_layers=('input', 'block1'), nce_patches=4,
                               projection_dim=4, identity_inputs='target')
    translation = CycleTranslation(config)
    logs = translation.training_step(torch.randn(1, 1, 32, 32), torch.randn(1, 3, 32, 32), 0)
    assert all(math.isfinite(v) for v in logs.values())
    assert translation.generator_xy(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_unpaired_batches_use_the_nodes_preprocessing_and_normalised_depth():
    m = method()
    data = rooms()
    np.random.seed(3)
    pairs = UnpairedDomains(data, seed=0, disjoint=True)
    item = pairs[0]
    batch = m.make_batch([item])
    gray = image_to_tensor(item['domain_x']['rgb'], 'rgb8', m.model_spec())
    assert gray.shape == (1, 1, 32, 32)
    assert torch.equal(batch['x'], torch.from_numpy(gray))
    expected = normalize_depth(item['domain_y']['depth'], 0.5, 10.0, True)
    assert torch.allclose(batch['y'][0, 0], torch.from_numpy(expected))
    assert 'log_depth' not in batch        # nothing paired leaks into training batches


def test_depth_normalisation_by_hand_and_its_runtime_inverse():
    depth = np.array([[0.5, 10.0], [5.25, np.nan], [0.1, 20.0]], np.float32)
    np.testing.assert_allclose(normalize_depth(depth, 0.5, 10.0, True),
                               [[1.0, -1.0], [0.0, -1.0], [1.0, -1.0]])  # unknown far, clipped
    assert normalize_depth(depth, 0.5, 10.0, False)[0].tolist() == pytest.approx([-1.0, 1.0])
    m = method()
    raw = torch.tensor([[[[1.0, 0.0, -0.5]]]])
    # The runtime's postprocess (what the node publishes) and the method agree.
    runtime = output_to_metres(raw[0, 0].numpy(), m.model_spec())
    np.testing.assert_allclose(runtime, [[0.5, 5.25, 7.625]])
    np.testing.assert_allclose(m.normalized_to_metres(raw)[0, 0].numpy(), runtime)


def test_predict_depth_is_g1_through_the_spec():
    m = method()
    sample = rooms()[1]
    batch = m.make_batch([sample])
    assert batch['log_depth'].shape == batch['valid'].shape == (1, 1, 32, 32)
    with torch.no_grad():
        raw = m.export_module()(batch['x'])[0, 0].numpy()
    np.testing.assert_allclose(m.predict_depth(batch)[0].numpy(),
                               output_to_metres(raw, m.model_spec()), rtol=1e-5)
    spec = m.model_spec()
    assert (spec.input_kind, spec.input_channels, spec.mean, spec.std) == \
        ('gray', 1, (0.5,), (0.5,))
    assert (spec.output_kind, spec.output_range, spec.near_is_bright) == \
        ('normalized_depth', (-1.0, 1.0), True)


def test_unpaired_domains_are_disjoint_halves_and_reproducible():
    data = fake_depth_scenes.FakeRooms(size=10, height=8, width=8)
    pairs = UnpairedDomains(data, seed=5, disjoint=True)
    assert len(pairs) == 5
    assert not set(pairs.x_indices.tolist()) & set(pairs.y_indices.tolist())
    np.random.seed(0)
    first = [(p['domain_x']['name'], p['domain_y']['name']) for p in (pairs[i] for i in range(5))]
    np.random.seed(0)
    again = [(p['domain_x']['name'], p['domain_y']['name']) for p in (pairs[i] for i in range(5))]
    assert first == again
    x_names = {data[int(i)]['name'] for i in pairs.x_indices}
    assert all(x in x_names and y not in x_names for x, y in first)
    shared = UnpairedDomains(data, seed=5, disjoint=False)
    assert len(shared) == 10 and sorted(shared.x_indices.tolist()) == list(range(10))
    with pytest.raises(ValueError, match='at least 2 samples'):
        UnpairedDomains(fake_depth_scenes.FakeRooms(size=1), seed=0)


def test_unpaired_domains_forward_the_epoch_keys_of_an_augmented_dataset():
    from training.datasets.augment import AugmentConfig
    from training.train import EpochAugmentedDataset
    data = fake_depth_scenes.FakeRooms(size=10, height=8, width=8)
    jitter = AugmentConfig(flip_probability=0.0, brightness=0.3, contrast=0.0, saturation=0.0,
                           gamma=(1.0, 1.0))
    augmented = EpochAugmentedDataset(data, jitter, seed=0)
    pairs = UnpairedDomains(augmented, seed=5, disjoint=True)
    assert pairs.takes_epoch and not UnpairedDomains(data, seed=5).takes_epoch
    np.random.seed(0)
    item = pairs[(2, 1)]
    np.random.seed(0)
    y_index = int(pairs.y_indices[np.random.randint(5)])
    # X is sample x_indices[1] of epoch 2 with that epoch's jitter, Y a depth of epoch 2.
    x_expected = augmented[(2, int(pairs.x_indices[1]))]
    assert np.array_equal(item['domain_x']['rgb'], x_expected['rgb'])
    assert not np.array_equal(item['domain_x']['rgb'], data[int(pairs.x_indices[1])]['rgb'])
    assert item['domain_y']['name'] == data[y_index]['name']
    np.testing.assert_array_equal(item['domain_y']['depth'], data[y_index]['depth'])


def test_image_history_replays_old_fakes_and_survives_checkpoints():
    torch.manual_seed(0)
    history = ImageHistory(2)
    a, b, c = (torch.full((1, 1, 2, 2), float(v)) for v in (1, 2, 3))
    assert torch.equal(history.query(a), a) and torch.equal(history.query(b), b)  # filling
    seen = {float(history.query(c)[0, 0, 0, 0]) for _ in range(20)}
    assert seen <= {1.0, 2.0, 3.0} and len(seen) > 1        # sometimes an older fake
    assert torch.equal(ImageHistory(0).query(c), c)

    m = method(history_size=3)
    m.training_step(unpaired_batch(m), 0)
    state = m.state_dict()
    assert state['image_history']['y'].shape == (1, 1, 32, 32)
    fresh = method(history_size=3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.translation.history_y.state(), state['image_history']['y'])


def test_learning_rate_constant_then_linear_decay():
    config = TranslationConfig(lr_constant_steps=2, lr_decay_steps=4)
    factors = [config.lr_factor(step) for step in range(8)]
    assert factors == pytest.approx([1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    m = method(lr=1e-3, lr_constant_steps=2, lr_decay_steps=4)
    logs = m.training_step(unpaired_batch(m), 3)
    assert logs['lr'] == pytest.approx(6e-4)
    assert all(g['lr'] == pytest.approx(6e-4) for o in m.optimizers().values()
               for g in o.param_groups)
    assert TranslationConfig().lr_factor(10 ** 6) == 1.0     # no decay configured


def test_options_are_checked():
    with pytest.raises(ValueError, match='nce_layers'):
        CycleGANConfig(**{**SMALL, 'nce_layers': ('block9',)})
    with pytest.raises(ValueError, match='x_channels and y_channels must be 1'):
        CycleGANConfig(**SMALL, y_channels=3)
    with pytest.raises(ValueError, match='divisible by 4'):
        CycleGANConfig(**{**SMALL, 'input_height': 30})
    with pytest.raises(ValueError, match='one process'):
        CycleGANMethod(CycleGANConfig(**SMALL), TrainContext(world_size=2))


def test_random_tone_remap_is_one_curve_per_image_then_a_light_field():
    levels = torch.linspace(-1, 1, 9)                       # the knots of 4 segments, 0.5 apart
    x = levels.repeat(2, 1, 4, 1)                           # (2, 1, 4, 9): every level, 4 rows
    torch.manual_seed(0)
    out = random_tone_remap(x, segments=4, illumination_std=0.0)
    torch.manual_seed(0)
    knots = torch.rand(2, 5)
    # Knot k sits at level 2k/4 - 1; between knots the curve is linear.
    expected_at_knots = knots * 2 - 1
    torch.testing.assert_close(out[:, 0, :, ::2], expected_at_knots[:, None, :].expand(2, 4, 5))
    torch.testing.assert_close(out[:, 0, :, 1::2],
                               (expected_at_knots[:, :-1] + expected_at_knots[:, 1:])[:, None]
                               .expand(2, 4, 4) / 2)
    lit = random_tone_remap(torch.zeros(1, 1, 16, 16), illumination_std=0.5)
    assert lit.std() > 0.01 and lit.min() >= -1 and lit.max() <= 1   # the light varies


def test_retoned_cycle_rebuilds_the_untouched_images():
    m = method(retone_g1_inputs=True, lambda_nce_x=0.0, lambda_nce_y=0.0, lambda_identity=0.0)
    t = m.translation
    batch = unpaired_batch(m)
    x, y = batch['x'], batch['y']
    g1, g2 = t.generator_xy, t.generator_yx
    with torch.no_grad():
        torch.manual_seed(11)
        _, terms, fakes = t.generator_losses(x, y)
        torch.manual_seed(11)
        x_in = random_tone_remap(x)
        fake_x = g2(y)
        cycle = ((x - g2(g1(x_in))).abs().mean() +
                 (y - g1(random_tone_remap(fake_x))).abs().mean())
    torch.testing.assert_close(fakes['fake_y'], g1(x_in).detach())
    assert terms['cycle'].item() == pytest.approx(cycle.item(), rel=1e-6)
    assert not torch.allclose(x_in, x)
