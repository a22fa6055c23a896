"""The backend factory: which backend a request means, and the engine that runs a model on it.

Separate from the contract (depth_nodes.runtime.engine) so the backends import the contract
and this module imports the backends, with no cycle.
"""
from __future__ import annotations

from pathlib import Path

from depth_nodes.runtime.engine import BACKENDS, Engine, EngineOptions


def resolve_backend(requested: str) -> tuple[str, str]:
    """The backend to use for a requested one, and why (for the log)."""
    if requested not in BACKENDS:
        raise ValueError(f"backend '{requested}' not in {BACKENDS}")
    if requested != 'auto':
        return requested, 'requested'
    from depth_nodes.runtime import tensorrt_engine
    available, reason = tensorrt_engine.availability()
    if available:
        return 'tensorrt', 'auto: TensorRT and a CUDA device are available'
    return 'onnxruntime', f'auto: {reason}, using ONNX Runtime'


def create_engine(model_path: Path, backend: str, options: EngineOptions = EngineOptions()
                  ) -> Engine:
    """Open ``model_path`` with a concrete backend (not 'auto'; see resolve_backend)."""
    if backend == 'onnxruntime':
        from depth_nodes.runtime.onnxruntime_engine import OnnxRuntimeEngine
        return OnnxRuntimeEngine(model_path, options)
    if backend == 'torch':
        from depth_nodes.runtime.torch_engine import TorchEngine
        return TorchEngine(model_path, options)
    if backend == 'tensorrt':
        from depth_nodes.runtime.tensorrt_engine import TensorRTEngine
        return TensorRTEngine(model_path, options)
    raise ValueError(f"backend '{backend}' is not a concrete backend")
