"""tools/evaluate_mono_real.py: the mirrored view and spec overrides, on the real pair with a
per-pixel model whose depth order does not depend on the layout."""
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.models import write_affine_model
from onnx import numpy_helper

from depth_nodes.core.model_spec import ModelSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
import evaluate_mono_real  # noqa: E402


@pytest.fixture(scope='module')
def per_pixel_model(tmp_path_factory):
    # A 1x1 convolution: each pixel's depth from its own colour, at a 4:3 input.
    spec = ModelSpec(method='affine', input_height=48, input_width=64,
                     output_kind='log_depth', mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     min_depth=1e-3, max_depth=1e3)
    return str(write_affine_model(tmp_path_factory.mktemp('m') / 'pixel.onnx', spec,
                                  weights=(0.1, 0.2, 0.3), bias=1.0))


@pytest.fixture(scope='module')
def layout_model(tmp_path_factory, per_pixel_model):
    # The per-pixel model plus a left-to-right ramp of log depth: its depth order depends on
    # which way round the scene is seen.
    model = onnx.load(per_pixel_model)
    graph = model.graph
    ramp = np.broadcast_to(np.linspace(-1.0, 1.0, 64, dtype=np.float32), (1, 1, 48, 64))
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(ramp), 'ramp'))
    output = graph.output[0].name
    producer = next(node for node in graph.node if output in node.output)
    producer.output[0] = 'per_pixel'
    graph.node.append(onnx.helper.make_node('Add', ['per_pixel', 'ramp'], [output]))
    path = tmp_path_factory.mktemp('m') / 'layout.onnx'
    onnx.save(model, str(path))
    return str(path)


def _rows(argv, capsys):
    assert evaluate_mono_real.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    return {line[:46].strip(): line[46:].split() for line in lines}


def test_mirror_keeps_the_baselines_and_a_per_pixel_models_order(per_pixel_model, capsys):
    plain = _rows(['--model', per_pixel_model, '--spec', 'resize_mode=letterbox'], capsys)
    mirrored = _rows(['--model', per_pixel_model, '--spec', 'resize_mode=letterbox',
                      '--mirror'], capsys)
    # The same pixels in both views: the constant, the row index and the luma map score alike.
    for name in ('constant median(gt)', 'row index (lower = nearer)',
                 'bright = near (256 - luma)'):
        assert plain[name] == mirrored[name]
    # A per-pixel model: mirroring the input mirrors its output (up to the resize), so its
    # depth order is the same on both views.
    spearman = float(plain['pixel'][2]), float(mirrored['pixel'][2])
    assert abs(spearman[0] - spearman[1]) < 0.01 and np.isfinite(spearman).all()


def test_malformed_spec_override_is_refused(per_pixel_model, capsys):
    with pytest.raises(SystemExit):
        evaluate_mono_real.main(['--model', per_pixel_model, '--spec', 'resize_mode'])
    assert 'FIELD=VALUE' in capsys.readouterr().err


def test_flip_scores_both_views_alike(layout_model, capsys):
    plain = [_rows(['--model', layout_model] + mirror, capsys)['layout']
             for mirror in ([], ['--mirror'])]
    flip = [_rows(['--model', layout_model, '--post-process', 'flip'] + mirror,
                  capsys)['layout'] for mirror in ([], ['--mirror'])]
    # Without it the ramp orders the scene one way in one view and the other way in the other.
    assert abs(float(plain[0][2]) - float(plain[1][2])) > 0.05
    # With it the ramp cancels (the mean of a ramp and its mirror is flat): one score.
    assert flip[0] == flip[1]
    assert flip[0][:3] != plain[0][:3]
