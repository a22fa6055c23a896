"""A depth node with a TensorRT it does not support (fake TensorRT 11 bindings): backend auto
falls back to ONNX Runtime saying why; backend tensorrt is a clean refusal at start (exit 1,
no traceback) and on a parameter-triggered reload (the running model is kept)."""
import functools
import os
import subprocess
from pathlib import Path

import numpy as np
from fixtures import fake_tensorrt
from fixtures.models import write_affine_model
from fixtures.ros_harness import installed_executable, overrides, ros_graph
from rclpy.parameter import Parameter

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.nodes.mono_depth_node import MonoDepthNode

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-4, max_depth=1e3)
REASON = 'TensorRT 11.0.0.1 is not supported (depth_nodes needs TensorRT >= 10.3, < 11)'
FIXTURES = Path(__file__).resolve().parents[1]


def test_auto_falls_back_and_a_reload_onto_tensorrt_is_refused_cleanly(tmp_path, monkeypatch):
    fake_tensorrt.install(monkeypatch, '11.0.0.1')
    model = write_affine_model(tmp_path / 'affine.onnx', SPEC)
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model), backend='auto'))
    with ros_graph(factory) as (_, (node,)):
        assert node.model.engine.backend == 'onnxruntime'
        assert node.model.backend_reason == f'auto: {REASON}, using ONNX Runtime'
        result = node.set_parameters([Parameter('backend', value='tensorrt')])[0]
        assert not result.successful and REASON in result.reason
        assert node.get_parameter('backend').value == 'auto'
        assert node.model.engine.backend == 'onnxruntime'     # the running model is kept
        out = node.model.engine.run({'image': np.zeros((1, 3, 24, 32), np.float32)})['depth']
        np.testing.assert_allclose(out, 0.25)       # the affine model's bias on a zero input


def test_backend_tensorrt_at_start_exits_1_naming_the_reason(tmp_path):
    package = tmp_path / 'site' / 'tensorrt'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text(
        'import sys\n'
        f'sys.path.insert(0, {str(FIXTURES)!r})\n'
        'from fixtures.fake_tensorrt import make_module\n'
        "sys.modules[__name__] = make_module('11.0.0.1')\n")
    model = write_affine_model(tmp_path / 'affine.onnx', SPEC)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / 'site'), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(installed_executable('mono_depth_node') + [
        '--ros-args', '-p', f'model:={model}', '-p', 'backend:=tensorrt'],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert f"cannot load model '{model}': backend tensorrt is unavailable: {REASON}" in output
    assert 'Traceback' not in output
