"""ONNX Runtime backend: CPU everywhere; the CUDA provider when the GPU build (onnxruntime-gpu)
finds a device; the OpenVINO provider on the CPU when the OpenVINO build (onnxruntime-openvino,
``DEPTH_NODES_ORT=openvino bash tools/bootstrap.sh``) is the installed ONNX Runtime.

The OpenVINO provider fuses every activation into its convolution, where ONNX Runtime's own
CPU provider fuses the ReLU-like ones but runs ELU as a separate, slow pass; it is held at
FP32 (on CPUs with bf16 units OpenVINO would otherwise pick bf16), so it computes the same
network to float rounding. Operators OpenVINO does not take stay on the CPU provider; a
model OpenVINO cannot compile loads on the CPU provider alone, with a warning.
``DEPTH_NODES_ORT_OPENVINO=0`` or EngineOptions(openvino=False) keeps the CPU provider."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from depth_nodes.runtime.engine import EngineOptions, ModelLoadError

log = logging.getLogger(__name__)
OPENVINO_ENV = 'DEPTH_NODES_ORT_OPENVINO'  # '0': the CPU provider even where OpenVINO's is
OPENVINO_PROVIDER = 'OpenVINOExecutionProvider'


def _switched_off(variable: str) -> bool:
    return os.environ.get(variable, '1').strip() in ('0', 'false', 'False')


def _provider_name(provider) -> str:
    return provider[0] if isinstance(provider, tuple) else provider


def choose_providers(available, options: EngineOptions) -> list:
    """The ONNX Runtime providers for an engine, best first, among those the installed build
    offers: CUDA (GPU build with a device), else OpenVINO on the CPU at FP32 (OpenVINO build,
    unless switched off), always followed by the CPU provider for what they do not take."""
    if 'CUDAExecutionProvider' in available:
        return [('CUDAExecutionProvider', {'device_id': options.device_id}),
                'CPUExecutionProvider']
    if OPENVINO_PROVIDER in available and options.openvino and not _switched_off(OPENVINO_ENV):
        settings = {'device_type': 'CPU', 'precision': 'FP32'}
        if options.intra_op_threads > 0:
            settings['num_of_threads'] = str(options.intra_op_threads)
        return [(OPENVINO_PROVIDER, settings), 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


class OnnxRuntimeEngine:
    backend = 'onnxruntime'

    def __init__(self, model_path: Path, options: EngineOptions = EngineOptions()):
        import onnxruntime as ort
        self.model_path = Path(model_path)
        self._options = options
        providers = choose_providers(ort.get_available_providers(), options)
        self.provider_note = ''   # why an offered provider is not used
        self._session = None
        if _provider_name(providers[0]) == OPENVINO_PROVIDER:
            try:
                self._session = ort.InferenceSession(str(self.model_path),
                                                     self._session_options(),
                                                     providers=providers)
            except Exception as exc:  # noqa: BLE001 - retried on the CPU provider below
                # (a broken model fails there too, with the CPU provider's message)
                self.provider_note = (f'OpenVINO provider failed ({str(exc)[:200]}); using the '
                                      f'CPU provider')
                providers = ['CPUExecutionProvider']
        try:
            if self._session is None:
                self._session = ort.InferenceSession(str(self.model_path),
                                                     self._session_options(),
                                                     providers=providers)
        except Exception as exc:  # onnxruntime raises several unrelated exception types
            raise ModelLoadError(self.model_path, f'not a usable ONNX model ({exc})') from None
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape)
            for i in self._session.get_inputs()}
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.providers = tuple(self._session.get_providers())
        self._version = ort.__version__
        if self.provider_note:
            log.warning('%s: %s', self.model_path, self.provider_note)

    def _session_options(self):
        import onnxruntime as ort
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._options.intra_op_threads > 0:
            session_options.intra_op_num_threads = self._options.intra_op_threads
        session_options.add_session_config_entry('session.intra_op.allow_spinning',
                                                 '1' if self._options.spin_wait else '0')
        session_options.log_severity_level = 3  # errors only; ours are clearer
        return session_options

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, dict(feeds))
        return dict(zip(self.output_names, outputs))

    def describe(self) -> str:
        extra = f'; {self.provider_note}' if self.provider_note else ''
        return f'onnxruntime {self._version} ({", ".join(self.providers)}{extra})'
