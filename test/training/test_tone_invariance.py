"""Tone invariance (issue 21's safeguard against "brighter is nearer"): the re-toning T by
hand, the loss by hand, and its place in the translation objective."""
import pytest
import torch

from training.losses.tone_invariance import ToneInvarianceLoss, random_tone_remap
from training.models.cyclegan import CycleGANConfig
from training.models.two_domain import CycleTranslation

torch.set_num_threads(1)


def images(seed=0, shape=(3, 1, 16, 20)):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_without_curve_or_light_t_is_the_image():
    x = images()
    torch.testing.assert_close(random_tone_remap(x, segments=0, illumination_std=0.0), x,
                               atol=1e-5, rtol=0)


def test_the_curve_is_piecewise_linear_through_random_knots_per_image():
    # Two segments: knots at input levels 0, 1/2, 1 (x = -1, 0, 1).
    levels = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]).view(1, 1, 1, 5).repeat(6, 1, 1, 1)
    out = random_tone_remap(levels, segments=2, illumination_std=0.0,
                            generator=torch.Generator().manual_seed(3))
    v = (out[:, 0, 0] + 1) / 2                        # output levels in [0, 1]
    knots = v[:, [0, 2, 4]]
    # Between knots: the mean of the two neighbouring knots.
    torch.testing.assert_close(v[:, 1], (knots[:, 0] + knots[:, 1]) / 2)
    torch.testing.assert_close(v[:, 3], (knots[:, 1] + knots[:, 2]) / 2)
    assert (knots >= 0).all() and (knots <= 1).all()
    assert knots.std(dim=0).min() > 0.05              # a new curve per image
    rising = (knots[:, 1] > knots[:, 0]) & (knots[:, 2] > knots[:, 1])
    falling = (knots[:, 1] < knots[:, 0]) & (knots[:, 2] < knots[:, 1])
    assert (~rising & ~falling).any()                 # some curves are not monotone
    # The same curve on every channel of an image.
    rgb = levels.repeat(1, 3, 1, 1)
    out3 = random_tone_remap(rgb, segments=2, illumination_std=0.0,
                             generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out3, out3[:, :1].expand_as(out3))


def test_light_alone_is_a_smooth_positive_gain_shared_by_the_channels():
    x = torch.full((2, 3, 24, 32), -0.6)             # u = 0.2: the gain never clips
    out = random_tone_remap(x, segments=0, illumination_std=0.3,
                            generator=torch.Generator().manual_seed(2))
    gain = (out + 1) / 2 / 0.2
    torch.testing.assert_close(gain, gain[:, :1].expand_as(gain))
    assert (gain > 0).all() and gain.std() > 0.05
    # Smooth: neighbouring pixels' gains differ far less than the gain varies overall.
    step = (gain[..., 1:] - gain[..., :-1]).abs().max()
    assert step < 0.1 * (gain.max() - gain.min())


def test_the_loss_is_the_mean_l1_between_the_two_maps():
    a = torch.tensor([[[[0.0, 1.0], [2.0, -1.0]]]])
    b = torch.tensor([[[[0.5, 1.0], [1.0, 1.0]]]])         # |.5| + 0 + 1 + 2 = 3.5 / 4
    assert ToneInvarianceLoss()(a, b).item() == pytest.approx(0.875)
    assert ToneInvarianceLoss()(a, a).item() == 0.0


def test_objective_adds_the_weighted_term_on_g1_of_the_retoned_image():
    config = CycleGANConfig(input_height=32, input_width=32, generator_channels=4,
                            generator_blocks=2, discriminator_channels=4, lambda_nce_x=0.0,
                            lambda_nce_y=0.0, lambda_identity=0.0,
                            lambda_tone_invariance=3.0).translation
    torch.manual_seed(0)
    translation = CycleTranslation(config)
    x, y = images(1, (1, 1, 32, 32)), images(2, (1, 1, 32, 32))
    torch.manual_seed(5)
    with torch.no_grad():
        total, terms, fakes = translation.generator_losses(x, y)
        torch.manual_seed(5)                     # T is the only random draw of the step
        retoned = translation.generator_xy(random_tone_remap(x))
    expected = (fakes['fake_y'] - retoned).abs().mean()
    assert terms['tone_invariance'].item() == pytest.approx(expected.item(), rel=1e-6)
    others = terms['gan_x'] + terms['gan_y'] + 10 * terms['cycle']
    assert total.item() == pytest.approx((others + 3 * expected).item(), rel=1e-6)
    paper = CycleTranslation(CycleGANConfig(input_height=32, input_width=32,
                                            generator_channels=4, generator_blocks=2,
                                            discriminator_channels=4,
                                            nce_layers=('down1',)).translation)
    assert 'tone_invariance' not in paper.generator_losses(x, y)[1]   # default: eq. 6 only
    with pytest.raises(ValueError, match='loss weights must be >= 0'):
        CycleGANConfig(lambda_tone_invariance=-1.0)
