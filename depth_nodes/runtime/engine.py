"""The inference-engine contract: what every backend offers and the options it takes.

An engine runs one model: named float32 inputs in, named outputs out. The backends
(created by depth_nodes.runtime.backends, which imports them; nothing here does):

- ``onnxruntime``: the default everywhere; CPU, or the CUDA provider when onnxruntime-gpu
  is installed and a GPU is present, or the OpenVINO provider on the CPU when
  onnxruntime-openvino is the installed build.
- ``tensorrt``: NVIDIA GPUs with TensorRT 10 (>= 10.3, < 11); engines built from the ONNX
  file and cached.
- ``torch``: PyTorch on a ``torch.export`` program (``.pt2`` beside the ``.onnx``), for
  debugging and parity checks against the training code.
- ``auto``: TensorRT when a supported version is importable and a CUDA device exists, else
  ONNX Runtime.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

BACKENDS = ('auto', 'onnxruntime', 'tensorrt', 'torch')
PRECISIONS = ('fp32', 'fp16', 'int8')


class ModelLoadError(RuntimeError):
    """A model that cannot be used; the message names the file and the reason."""

    def __init__(self, path, reason: str):
        super().__init__(f"cannot load model '{path}': {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class EngineOptions:
    precision: str = 'fp32'          # TensorRT builder precision
    engine_cache_dir: str = ''       # TensorRT engine cache ('' = ~/.ros/depth_nodes/engines)
    force_engine_update: bool = False
    intra_op_threads: int = 0        # ONNX Runtime / torch CPU threads (0 = library default)
    device_id: int = 0               # CUDA device
    # ONNX Runtime's OpenVINO provider on the CPU when the installed ONNX Runtime is the
    # OpenVINO build (onnxruntime-openvino); DEPTH_NODES_ORT_OPENVINO=0 turns it off too.
    openvino: bool = True
    # ONNX Runtime's intra-op threads spin-wait after each run (its default) instead of
    # sleeping; semidense_depth_node turns it off (docs/performance.md).
    spin_wait: bool = True


class Engine(Protocol):
    backend: str
    model_path: Path
    input_shapes: dict[str, tuple[int, ...]]
    output_names: tuple[str, ...]
    metadata: dict[str, str]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; every input named in ``input_shapes`` must be fed as float32."""

    def describe(self) -> str:
        """One line for logs and diagnostics, e.g. 'onnxruntime 1.31 (CPUExecutionProvider)'."""
