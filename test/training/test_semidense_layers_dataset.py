"""synthetic_layers: deterministic layered slanted planes with exact depth, their scale
range, and the share of rooms and streets."""
import numpy as np
import pytest

from training.datasets import build_dataset
from training.datasets.synthetic_layers import SCALE_RANGE, render_layers


def test_samples_are_deterministic_and_in_range():
    data = build_dataset('synthetic_layers', 'train', None, size=6, height=48, width=64)
    a, b = data[3], data[3]
    assert np.array_equal(a['depth'], b['depth']) and np.array_equal(a['rgb'], b['rgb'])
    assert a['rgb'].shape == (48, 64, 3) and a['rgb'].dtype == np.uint8
    medians = []
    for i in range(len(data)):
        depth = data[i]['depth']
        assert depth.shape == (48, 64) and np.isfinite(depth).all() and depth.min() > 0
        medians.append(np.median(depth))
    # Layers lie at 0.3-1.2x and the background at 1-2.5x the view's scale (<= 20x floor).
    assert SCALE_RANGE[0] * 0.3 * 0.5 < min(medians) and max(medians) < SCALE_RANGE[1] * 20
    assert not np.array_equal(data[0]['depth'], data[1]['depth'])
    with pytest.raises(IndexError):
        data[6]


def test_a_plane_has_inverse_depth_affine_in_the_image():
    rng = np.random.default_rng(5)
    sample = render_layers(rng, 60, 80)
    inverse = 1.0 / sample['depth'].astype(np.float64)
    # Second differences of 1/d vanish inside a plane and jump at occlusion edges.
    second = np.abs(np.diff(inverse, 2, axis=1))
    scale = np.abs(np.diff(inverse, axis=1)).max()
    assert np.mean(second < 1e-6 * inverse.max()) > 0.8 and scale > 0


def test_scenes_fraction_mixes_in_rooms_and_streets():
    data = build_dataset('synthetic_layers', 'val', None, size=8, height=32, width=48,
                         scenes_fraction=1.0)
    assert data[0]['name'].startswith('synthetic/val/')
    with pytest.raises(ValueError, match='scenes_fraction'):
        build_dataset('synthetic_layers', 'val', None, scenes_fraction=2.0)
