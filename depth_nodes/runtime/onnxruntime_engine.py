"""ONNX Runtime backend: CPU everywhere, CUDA provider when the GPU build finds a device."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from depth_nodes.runtime.engine import EngineOptions, ModelLoadError


class OnnxRuntimeEngine:
    backend = 'onnxruntime'

    def __init__(self, model_path: Path, options: EngineOptions = EngineOptions()):
        import onnxruntime as ort
        self.model_path = Path(model_path)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.intra_op_threads > 0:
            session_options.intra_op_num_threads = options.intra_op_threads
        session_options.log_severity_level = 3  # errors only; ours are clearer
        providers = ['CPUExecutionProvider']
        if 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': options.device_id}))
        try:
            self._session = ort.InferenceSession(str(self.model_path), session_options,
                                                 providers=providers)
        except Exception as exc:  # onnxruntime raises several unrelated exception types
            raise ModelLoadError(self.model_path, f'not a usable ONNX model ({exc})') from None
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape)
            for i in self._session.get_inputs()}
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.providers = tuple(self._session.get_providers())
        self._version = ort.__version__

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, dict(feeds))
        return dict(zip(self.output_names, outputs))

    def describe(self) -> str:
        return f'onnxruntime {self._version} ({", ".join(self.providers)})'
