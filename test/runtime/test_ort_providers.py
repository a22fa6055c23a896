"""Which ONNX Runtime provider the engine runs on (depth_nodes/runtime/onnxruntime_engine.py):
CUDA with the GPU build, OpenVINO at FP32 on the CPU with the OpenVINO build, else the CPU
provider, which also takes over when OpenVINO cannot compile a model. The tests that need
the OpenVINO build itself (DEPTH_NODES_ORT=openvino bash tools/bootstrap.sh) skip without it."""
import os
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from depth_nodes.runtime import onnxruntime_engine
from depth_nodes.runtime.engine import EngineOptions
from depth_nodes.runtime.onnxruntime_engine import (OPENVINO_ENV, OPENVINO_PROVIDER,
                                                    OnnxRuntimeEngine, choose_providers)
from fixtures.models import H, W, reference, residual_elu_model

REPO = Path(__file__).resolve().parents[2]
CPU = 'CPUExecutionProvider'
needs_openvino = pytest.mark.skipif(
    OPENVINO_PROVIDER not in ort.get_available_providers(),
    reason='needs the OpenVINO build of ONNX Runtime (DEPTH_NODES_ORT=openvino bash '
           'tools/bootstrap.sh); this environment has the CPU build')


def test_cpu_build_runs_on_the_cpu_provider():
    assert choose_providers([CPU], EngineOptions()) == [CPU]


def test_openvino_build_runs_openvino_on_the_cpu_at_fp32_with_the_cpu_provider_behind():
    chosen = choose_providers([OPENVINO_PROVIDER, CPU], EngineOptions(intra_op_threads=3))
    assert chosen == [(OPENVINO_PROVIDER, {'device_type': 'CPU', 'precision': 'FP32',
                                           'num_of_threads': '3'}), CPU]
    # No thread count given: OpenVINO's own default.
    assert choose_providers([OPENVINO_PROVIDER, CPU], EngineOptions())[0] == (
        OPENVINO_PROVIDER, {'device_type': 'CPU', 'precision': 'FP32'})


@pytest.mark.parametrize('spin_wait, expected', [(False, '0'), (True, '1')])
def test_intra_op_threads_sleep_between_runs_unless_asked_to_spin(tmp_path, spin_wait,
                                                                  expected):
    engine = OnnxRuntimeEngine(residual_elu_model(tmp_path / 'm.onnx'),
                               EngineOptions(spin_wait=spin_wait))
    options = engine._session.get_session_options()
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == expected


@pytest.mark.parametrize('value', ['0', 'false'])
def test_openvino_is_switched_off_by_option_or_environment(monkeypatch, value):
    available = [OPENVINO_PROVIDER, CPU]
    assert choose_providers(available, EngineOptions(openvino=False)) == [CPU]
    monkeypatch.setenv(OPENVINO_ENV, value)
    assert choose_providers(available, EngineOptions()) == [CPU]


def test_a_gpu_comes_first():
    chosen = choose_providers(['CUDAExecutionProvider', OPENVINO_PROVIDER, CPU],
                              EngineOptions(device_id=1))
    assert chosen == [('CUDAExecutionProvider', {'device_id': 1}), CPU]


def test_a_model_openvino_cannot_compile_runs_on_the_cpu_provider(tmp_path, monkeypatch,
                                                                  caplog):
    """OpenVINO offered but failing: the engine loads on the CPU provider, says why in
    describe() and the log, and computes the right values."""
    path = residual_elu_model(tmp_path / 'm.onnx')
    real_session = ort.InferenceSession
    tried = []
    # launch_testing's pytest plugin makes new loggers LaunchLoggers that do not propagate to
    # the root logger, where caplog listens: listen on the engine's logger itself.
    log = onnxruntime_engine.log
    monkeypatch.setattr(log, 'handlers', log.handlers + [caplog.handler])

    def session(model, options=None, providers=None, **kwargs):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        tried.append(names)
        if OPENVINO_PROVIDER in names:
            raise RuntimeError('OpenVINO: unsupported operation')
        return real_session(model, options, providers=providers, **kwargs)

    monkeypatch.setattr(ort, 'get_available_providers', lambda: [OPENVINO_PROVIDER, CPU])
    monkeypatch.setattr(ort, 'InferenceSession', session)
    engine = OnnxRuntimeEngine(path, EngineOptions(intra_op_threads=1))
    assert tried[0] == [OPENVINO_PROVIDER, CPU] and all(t == [CPU] for t in tried[1:])
    assert engine.providers == (CPU,)
    assert 'OpenVINO provider failed (OpenVINO: unsupported operation)' in engine.describe()
    assert 'using the CPU provider' in caplog.text
    x = np.random.default_rng(8).normal(0, 1, (1, 2, H, W)).astype(np.float32)
    np.testing.assert_allclose(engine.run({'x': x})['y'], reference(path, x), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.filterwarnings('ignore:Specified provider')     # the CPU build, told OpenVINO
def test_a_corrupt_model_is_still_a_model_load_error_naming_the_file(tmp_path, monkeypatch):
    from depth_nodes.runtime.engine import ModelLoadError
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'not an onnx model')
    monkeypatch.setattr(ort, 'get_available_providers', lambda: [OPENVINO_PROVIDER, CPU])
    with pytest.raises(ModelLoadError, match='corrupt.onnx'):
        OnnxRuntimeEngine(path)


@needs_openvino
@pytest.mark.parametrize('model', ['residual_elu', 'semidense_synthetic', 'eigen_synthetic'])
def test_openvino_computes_what_the_cpu_provider_computes(tmp_path, model):
    path = (residual_elu_model(tmp_path / 'm.onnx') if model == 'residual_elu'
            else REPO / 'models' / f'{model}.onnx')
    openvino = OnnxRuntimeEngine(path, EngineOptions(intra_op_threads=1))
    cpu = OnnxRuntimeEngine(path, EngineOptions(intra_op_threads=1, openvino=False))
    assert openvino.providers[0] == OPENVINO_PROVIDER and cpu.providers == (CPU,)
    assert OPENVINO_PROVIDER in openvino.describe() and openvino.metadata == cpu.metadata
    rng = np.random.default_rng(9)
    feeds = {name: rng.random(shape, dtype=np.float32)
             for name, shape in openvino.input_shapes.items()}
    got, expected = openvino.run(feeds), cpu.run(feeds)
    for name in cpu.output_names:
        scale = max(1.0, float(np.abs(expected[name]).max()))
        # FP32 both: only summation order differs (a bf16 run would be off by ~1e-2).
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5 * scale)


def test_bootstrap_refuses_an_unknown_onnx_runtime_build():
    result = subprocess.run(['bash', str(REPO / 'tools' / 'bootstrap.sh')], cwd=REPO,
                            env={**os.environ, 'DEPTH_NODES_ORT': 'gpu'},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "DEPTH_NODES_ORT must be 'cpu' or 'openvino', not 'gpu'" in result.stderr


def test_openvino_requirement_is_pinned_exactly():
    lines = [line.strip() for line in (REPO / 'requirements-openvino.txt').read_text()
             .splitlines() if line.strip() and not line.startswith('#')]
    assert lines == [line for line in lines if line.startswith('onnxruntime-openvino==')]
    assert len(lines) == 1
