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
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from depth_nodes.runtime.engine import EngineOptions, ModelLoadError

log = logging.getLogger(__name__)
NCHWC_ENV = 'DEPTH_NODES_ORT_NCHWC'      # '0': keep ONNX Runtime's own graph
NCHWC_TOLERANCE = 1e-4                   # relative to the output's largest magnitude
NCHWC_MAX_BYTES = 1 << 30                # larger models: no optimised copy written to /tmp
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
        self.nchwc_moved = 0      # element-wise operators kept in NCHWc (ort_nchwc.py)
        self.nchwc_note = ''
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
        original = None           # the model as onnx reads it, when the rewrite may apply
        if (self._session is None and options.nchwc_elementwise and len(providers) == 1
                and not _switched_off(NCHWC_ENV) and self.model_path.is_file()):
            if self.model_path.stat().st_size > NCHWC_MAX_BYTES:
                self.nchwc_note = 'NCHWc rewrite skipped: model over 1 GB'
            else:
                original = _model_with_nchwc_candidates(self.model_path)
        rewrite = original is not None
        try:
            with tempfile.TemporaryDirectory(prefix='depth_nodes_ort_') as tmp:
                optimised = Path(tmp) / 'optimised.onnx'
                try:
                    if self._session is None:
                        self._session = ort.InferenceSession(
                            str(self.model_path),
                            self._session_options(optimised if rewrite else None),
                            providers=providers)
                except Exception as exc:  # noqa: BLE001 - retried without the rewrite below
                    if not rewrite:
                        raise
                    # Writing the optimised copy can fail where loading does not (disk
                    # space, size): the model must still load as it would without it.
                    rewrite = False
                    self.nchwc_note = f'NCHWc rewrite skipped ({str(exc)[:200]})'
                    self._session = ort.InferenceSession(
                        str(self.model_path), self._session_options(), providers=providers)
                # The model's own metadata (the optimised copy need not keep it).
                self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
                if rewrite:
                    try:
                        self._use_nchwc_rewrite(optimised, original)
                    except Exception as exc:  # noqa: BLE001 - never worse than the plain graph
                        self.nchwc_note = (f'NCHWc rewrite failed ({str(exc)[:300]}); using '
                                           f'the plain session')
                        log.warning('%s: %s', self.model_path, self.nchwc_note)
        except ModelLoadError:
            raise
        except Exception as exc:  # onnxruntime raises several unrelated exception types
            raise ModelLoadError(self.model_path, f'not a usable ONNX model ({exc})') from None
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape)
            for i in self._session.get_inputs()}
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.providers = tuple(self._session.get_providers())
        self._version = ort.__version__
        if self.provider_note:
            log.warning('%s: %s', self.model_path, self.provider_note)

    def _session_options(self, optimised_path: Path | None = None, optimise: bool = True):
        import onnxruntime as ort
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        if optimised_path is not None:
            session_options.optimized_model_filepath = str(optimised_path)
        if self._options.intra_op_threads > 0:
            session_options.intra_op_num_threads = self._options.intra_op_threads
        session_options.log_severity_level = 3  # errors only; ours are clearer
        return session_options

    def _use_nchwc_rewrite(self, optimised: Path, original) -> None:
        """Swap in a session on ONNX Runtime's own optimised graph with the element-wise
        operators kept in NCHWc (ort_nchwc.py), if that moves any and gives the same output
        on a random input; otherwise keep the plain session and say why in nchwc_note
        (an exception from here does the same, in __init__)."""
        import onnx
        import onnxruntime as ort

        from depth_nodes.runtime import ort_nchwc
        if not optimised.is_file():
            self.nchwc_note = 'NCHWc rewrite: ONNX Runtime wrote no optimised model'
            return
        model = onnx.load(str(optimised))
        moved = ort_nchwc.keep_elementwise_in_nchwc(model, ort_nchwc.known_shapes(original))
        if not moved:
            return
        feeds = {}
        rng = np.random.default_rng(0)
        for given in self._session.get_inputs():
            if not all(isinstance(d, int) and d > 0 for d in given.shape):
                self.nchwc_note = f'NCHWc rewrite skipped: input {given.name} has a dynamic shape'
                return
            if given.type != 'tensor(float)':
                self.nchwc_note = f'NCHWc rewrite skipped: input {given.name} is {given.type}'
                return
            feeds[given.name] = rng.random(given.shape, dtype=np.float32)
        candidate = ort.InferenceSession(model.SerializeToString(),
                                         self._session_options(optimise=False),
                                         providers=['CPUExecutionProvider'])
        names = [o.name for o in self._session.get_outputs()]
        plain = self._session.run(names, feeds)
        rewritten = candidate.run(names, feeds)
        error = max(float(np.max(np.abs(a - b), initial=0.0)) /
                    max(1.0, float(np.max(np.abs(a), initial=0.0)))
                    for a, b in zip(plain, rewritten))
        if not error <= NCHWC_TOLERANCE:
            self.nchwc_note = (f'NCHWc rewrite differs by {error:.2g} (> {NCHWC_TOLERANCE}); '
                               f'using the plain session')
            log.warning('%s: %s', self.model_path, self.nchwc_note)
            return
        self._session = candidate
        self.nchwc_moved = moved
        self.nchwc_note = f'{moved} element-wise ops in NCHWc'

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, dict(feeds))
        return dict(zip(self.output_names, outputs))

    def describe(self) -> str:
        notes = [note for note in (self.provider_note, self.nchwc_note) if note]
        extra = ''.join(f'; {note}' for note in notes)
        return f'onnxruntime {self._version} ({", ".join(self.providers)}{extra})'


def _model_with_nchwc_candidates(path: Path):
    """The model (onnx.ModelProto, without external data) if it has an operator the NCHWc
    rewrite could move, else None: that saves writing the optimised copy of, e.g., a 250 MB
    all-ReLU model for nothing. None without the onnx package, and for a file onnx cannot
    read (ONNX Runtime then reports the error)."""
    try:
        import onnx
    except ImportError:         # optional: without it ONNX Runtime's own graph is used
        return None
    from depth_nodes.runtime.ort_nchwc import UNARY_OPS
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - the session's own error is the clearer one
        return None
    return model if any(node.op_type in UNARY_OPS for node in model.graph.node) else None
