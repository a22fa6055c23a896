"""depth_nodes.core.semidense: LSD-SLAM-like gradient masks and uniform LiDAR-like masks."""
import numpy as np
import pytest

from depth_nodes.core.semidense import (gradient_magnitude, random_sample_mask,
                                        semidense_mask_from_gradient)


def test_density_matches_the_target_on_a_textured_image():
    rng = np.random.default_rng(0)
    texture = (rng.random((120, 160)) * 255).astype(np.uint8)
    for target in (0.1, 0.125, 0.15):
        density = semidense_mask_from_gradient(texture, target).mean()
        assert density == pytest.approx(target, abs=0.003)


def test_keeps_the_step_edge_and_nothing_of_a_flat_image():
    # A vertical step 40 -> 200 at column 30 of an otherwise flat 64x64 image. Sobel after
    # the 3x3 blur responds on columns 28..31 (two either side of the step), so asking for
    # 4/64 of the pixels must return exactly those four columns.
    image = np.full((64, 64), 40, np.uint8)
    image[:, 30:] = 200
    mask = semidense_mask_from_gradient(image, target_density=4 / 64)
    assert mask.sum() == 4 * 64
    assert np.flatnonzero(mask.any(axis=0)).tolist() == [28, 29, 30, 31]
    # More than the edge asked for: only gradient pixels qualify, the flat rest never does.
    assert semidense_mask_from_gradient(image, 0.5).sum() == 4 * 64
    flat = np.full((32, 32), 90, np.uint8) + (np.arange(32) % 2).astype(np.uint8)[None, :]
    assert gradient_magnitude(flat).max() < 24.0       # +-1 grey level of noise
    assert not semidense_mask_from_gradient(flat, 0.12).any()


def test_adaptive_threshold_keeps_weak_edges_in_a_quiet_region():
    # Left half: a strong texture; right half: one weak but clear edge. A global gradient
    # threshold at the target density would take only the left half; the local
    # normalisation keeps the weak edge too, as LSD-SLAM would (it only needs *some* texture).
    rng = np.random.default_rng(1)
    image = np.full((64, 128), 100, np.uint8)
    image[:, :64] = rng.integers(0, 255, size=(64, 64))
    image[:, 96:] = 140
    weak_edge = gradient_magnitude(image)[:, 95:97]
    assert weak_edge.max() < np.quantile(gradient_magnitude(image), 0.9)   # globally weak
    mask = semidense_mask_from_gradient(image, target_density=0.1)
    assert mask[:, 95:97].all()
    assert mask[:, :64].mean() > 0.05


def test_input_is_checked():
    with pytest.raises(ValueError, match='uint8'):
        semidense_mask_from_gradient(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match='target_density'):
        semidense_mask_from_gradient(np.zeros((8, 8), np.uint8), 1.5)
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        semidense_mask_from_gradient(np.zeros((8, 8, 3), np.uint8))


def test_random_sample_mask_has_exact_count_and_spreads_uniformly():
    mask = random_sample_mask((200, 300), 0.05, np.random.default_rng(7))
    assert mask.sum() == 3000
    quadrants = [mask[:100, :150].sum(), mask[:100, 150:].sum(), mask[100:, :150].sum(),
                 mask[100:, 150:].sum()]
    assert all(abs(q - 750) < 120 for q in quadrants)      # ~4.5 sigma of a binomial
    np.testing.assert_array_equal(mask, random_sample_mask((200, 300), 0.05,
                                                           np.random.default_rng(7)))
    assert random_sample_mask((4, 4), 0.0, np.random.default_rng(0)).sum() == 0
    with pytest.raises(ValueError, match='density'):
        random_sample_mask((4, 4), -0.1, np.random.default_rng(0))
