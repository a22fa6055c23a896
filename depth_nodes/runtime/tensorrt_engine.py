"""TensorRT backend (NVIDIA GPUs). Imported lazily: nothing here runs without TensorRT.

The engine builder, the engine cache and the runtime are built out by the TensorRT issue;
until then ``TensorRTEngine`` refuses to load with a clear message and ``auto`` falls back
to ONNX Runtime.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from depth_nodes.runtime.engine import EngineOptions, ModelLoadError


def availability() -> tuple[bool, str]:
    """(True, '') when TensorRT is importable and a CUDA device exists, else (False, why)."""
    if importlib.util.find_spec('tensorrt') is None:
        return False, 'TensorRT is not installed'
    try:
        import torch
    except ImportError:
        return False, 'no CUDA runtime (PyTorch) to drive TensorRT'
    if not torch.cuda.is_available():
        return False, 'no CUDA device'
    return True, ''


class TensorRTEngine:
    backend = 'tensorrt'

    def __init__(self, model_path: Path, options: EngineOptions = EngineOptions()):
        available, reason = availability()
        if not available:
            raise ModelLoadError(model_path, f'backend tensorrt is unavailable: {reason}')
        raise ModelLoadError(model_path, 'the TensorRT backend is not built yet')
