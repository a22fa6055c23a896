"""TensorRT backend (NVIDIA GPUs): build an engine from the ONNX model, cache it, run it.

The one module that imports ``tensorrt``, and only inside functions, so importing it (e.g. for
``availability()`` or the calibration-data helpers) works on machines without TensorRT.
Written against the TensorRT 10 Python API:

- build: ``trt.Builder`` -> ``create_network(0)`` (explicit batch is the only mode in TRT 10)
  -> ``trt.OnnxParser.parse_from_file`` (errors reported by node name) -> builder config
  (workspace pool limit, FP16/INT8 flags, entropy calibrator, timing cache) with one
  optimisation profile pinned to the model's static input shapes -> ``build_serialized_network``.
- cache: depth_nodes.runtime.engine_cache (key = ONNX SHA-256 + TensorRT version + GPU +
  precision), so a node never rebuilds an engine the cache already holds.
- run: named I/O tensors; device buffers are torch CUDA tensors allocated once, host staging
  buffers are pinned, copies are asynchronous on a dedicated ``torch.cuda.Stream`` around
  ``execute_async_v3``, and the stream is synchronised before numpy arrays are returned.

INT8 uses implicit quantization with ``IInt8EntropyCalibrator2`` fed by the same
pre-processing the node runs (depth_nodes.core.preprocess.image_to_tensor with the model's
spec). NVIDIA deprecated implicit quantization in TensorRT 10.1 in favour of Q/DQ models; it
still works throughout TensorRT 10.
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime.engine import PRECISIONS, EngineOptions, ModelLoadError
from depth_nodes.runtime.engine_cache import (EngineCache, EngineCacheError, atomic_write_bytes,
                                              make_engine_key, onnx_model_sha256,
                                              safe_file_name)

LOGGER = logging.getLogger('depth_nodes.tensorrt')

# Builder workspace limit of the nodes (MiB). Enough for the tactics of the small convnets
# here; the CLI's --workspace-mb changes it. Not part of the cache key (engine_cache.py).
DEFAULT_WORKSPACE_MB = 1024
# INT8 calibration tables: beside the model (shipped with it) or in the engine cache.
CALIBRATION_SUFFIX = '.int8.calib'
TIMING_CACHE_SUFFIX = '.timing'
# NVIDIA's INT8 guidance: a few hundred representative images are enough for CNNs.
DEFAULT_CALIBRATION_SAMPLES = 500
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.pgm', '.ppm', '.webp')


class TensorRTBuildError(RuntimeError):
    """The ONNX parser or the builder refused the model; the message says where and why."""


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


def tensorrt_version() -> str:
    import tensorrt as trt
    return trt.__version__


def gpu_identity(device_id: int = 0) -> tuple[str, tuple[int, int]]:
    """(GPU name, compute capability) of a CUDA device, e.g. ('Orin', (8, 7))."""
    import torch
    props = torch.cuda.get_device_properties(device_id)
    return props.name, (props.major, props.minor)


_LOGGER_SINGLETON = None


def default_logger():
    """One trt.Logger (warnings and errors) shared by builders and runtimes, as NVIDIA advises."""
    global _LOGGER_SINGLETON
    if _LOGGER_SINGLETON is None:
        import tensorrt as trt
        _LOGGER_SINGLETON = trt.Logger(trt.Logger.WARNING)
    return _LOGGER_SINGLETON


# -- the model's interface without building anything ---------------------------------------
@dataclass(frozen=True)
class OnnxInterface:
    input_shapes: dict[str, tuple[int, ...]]   # -1 for a dynamic dimension
    output_names: tuple[str, ...]
    metadata: dict[str, str]                   # the ONNX metadata map (model spec inside)


def read_onnx_interface(onnx_path: Path) -> OnnxInterface:
    """Inputs, outputs and metadata of an ONNX file, read with ONNX Runtime (no optimisation).

    onnxruntime is already a node dependency (the fallback backend); ``onnx`` is pip-only and
    stays off the node's path.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelLoadError(onnx_path, 'reading the model interface needs onnxruntime '
                                        '(rosdep key python3-onnxruntime-pip)') from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), options,
                                       providers=['CPUExecutionProvider'])
    except Exception as exc:  # noqa: BLE001  onnxruntime raises several unrelated types
        raise ModelLoadError(onnx_path, f'not a usable ONNX model ({exc})') from None
    return OnnxInterface(
        {i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape)
         for i in session.get_inputs()},
        tuple(o.name for o in session.get_outputs()),
        dict(session.get_modelmeta().custom_metadata_map))


# -- building --------------------------------------------------------------------------------
def format_parser_errors(errors: Iterable[Any], node_names: Sequence[str] = ()) -> str:
    """TensorRT ONNX-parser errors as lines naming the node, its op type, the code and why.

    ``errors`` are ``trt.ParserError`` objects (``node()``, ``node_name()``,
    ``node_operator()``, ``code()``, ``desc()``); ``node_names`` (the graph's node names in
    order) fills in names for parsers older than TensorRT 10, which report only an index.
    """
    lines = []
    for error in errors:
        index = error.node()
        name = _optional_call(error, 'node_name')
        if not name and 0 <= index < len(node_names):
            name = node_names[index]
        where = f"node '{name}'" if name else (f'node #{index}' if index >= 0 else 'model')
        operator = _optional_call(error, 'node_operator')
        if operator:
            where += f' ({operator})'
        lines.append(f'  - {where}: {error.code()}: {error.desc()}')
    return '\n'.join(lines)


def _optional_call(obj, method: str) -> str:
    fn = getattr(obj, method, None)
    try:
        return str(fn()) if fn is not None else ''
    except Exception:  # noqa: BLE001  a binding without the accessor
        return ''


def _onnx_node_names(onnx_path: Path) -> list[str]:
    """Node names for error messages, when the (optional) onnx package is installed."""
    try:
        import onnx
        return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node]
    except Exception:  # noqa: BLE001  best effort: the message still has the node index
        return []


def build_serialized_engine(onnx_path: Path, precision: str = 'fp32',
                            workspace_mb: int = DEFAULT_WORKSPACE_MB,
                            timing_cache: Path | None = None, calibrator=None,
                            logger=None) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine at ``precision``.

    ``timing_cache``: a file of kernel timings reused across builds (read when present,
    written back atomically); ``calibrator``: an IInt8EntropyCalibrator2 for int8 (see
    make_entropy_calibrator). Raises TensorRTBuildError naming the offending nodes.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' not in {PRECISIONS}")
    if precision == 'int8' and calibrator is None:
        raise ValueError('int8 needs a calibrator (calibration images or a calibration cache)')
    import tensorrt as trt
    onnx_path = Path(onnx_path)
    logger = logger or default_logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)   # TRT 10: always explicit batch (flag deprecated)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise TensorRTBuildError(f"TensorRT's ONNX parser rejected '{onnx_path}':\n"
                                 + format_parser_errors(errors, _onnx_node_names(onnx_path)))
    config = builder.create_builder_config()
    if workspace_mb > 0:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise TensorRTBuildError(
                f"input '{tensor.name}' of '{onnx_path}' has the dynamic shape {shape}; the "
                'TensorRT backend builds for static shapes: export the model with fixed sizes')
        profile.set_shape(tensor.name, shape, shape, shape)   # min = opt = max
    config.add_optimization_profile(profile)
    if precision in ('fp16', 'int8'):
        config.set_flag(trt.BuilderFlag.FP16)   # int8: layers that cannot quantize run fp16
    if precision == 'int8':
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        if hasattr(config, 'set_calibration_profile'):
            config.set_calibration_profile(profile)
    if timing_cache is not None:
        _attach_timing_cache(config, Path(timing_cache))
    serialized = builder.build_serialized_network(network, config)
    calibration_error = getattr(calibrator, 'error', None)
    if calibration_error is not None:
        raise TensorRTBuildError(f'INT8 calibration failed: {calibration_error}')
    if serialized is None:
        raise TensorRTBuildError(f"TensorRT could not build an engine for '{onnx_path}' at "
                                 f'{precision} (the TensorRT log above says why)')
    if timing_cache is not None:
        atomic_write_bytes(Path(timing_cache), bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def _attach_timing_cache(config, path: Path) -> None:
    data = path.read_bytes() if path.is_file() else b''
    try:
        cache = config.create_timing_cache(data)
        if config.set_timing_cache(cache, ignore_mismatch=False):
            return
    except Exception as exc:  # noqa: BLE001
        LOGGER.warning('ignoring unreadable timing cache %s (%s)', path, exc)
    LOGGER.warning('timing cache %s is from another GPU or TensorRT; starting a new one', path)
    config.set_timing_cache(config.create_timing_cache(b''), ignore_mismatch=False)


# -- INT8 calibration ------------------------------------------------------------------------
def read_calibration_image(path: Path) -> tuple[np.ndarray, str]:
    """An image file as (pixels, ROS encoding), the way a camera driver would publish it."""
    import cv2
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"calibration image '{path}' cannot be read (not an image?)")
    channels = 1 if image.ndim == 2 else image.shape[2]
    encodings = {(np.uint8, 1): 'mono8', (np.uint16, 1): 'mono16', (np.uint8, 3): 'bgr8',
                 (np.uint8, 4): 'bgra8'}
    encoding = encodings.get((image.dtype.type, channels))
    if encoding is None:
        raise ValueError(f"calibration image '{path}': {channels}-channel {image.dtype} images "
                         'are not supported (use 8-bit colour or 8/16-bit mono)')
    return (image if channels > 1 else image.reshape(image.shape[:2])), encoding


def calibration_batches_from_directory(directory: Path, spec: ModelSpec,
                                       limit: int = DEFAULT_CALIBRATION_SAMPLES
                                       ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds for single-image models from the image files in ``directory`` (sorted by name).

    Each image goes through image_to_tensor with the model's spec: what the node does.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"calibration directory '{directory}' does not exist")
    if len(spec.input_names) != 1 or spec.input_kind not in ('rgb', 'gray', 'nir'):
        raise ValueError(f'a directory of images calibrates single-image models; this model '
                         f"takes {list(spec.input_names)} ({spec.input_kind}): use "
                         '--calibration-dataset')
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"calibration directory '{directory}' holds no images "
                         f'({", ".join(IMAGE_SUFFIXES)})')
    return _image_feeds(files[:limit], spec)


def _image_feeds(files: list[Path], spec: ModelSpec) -> Iterator[dict[str, np.ndarray]]:
    from depth_nodes.core.preprocess import image_to_tensor
    for path in files:
        image, encoding = read_calibration_image(path)
        yield {spec.input_names[0]: image_to_tensor(image, encoding, spec)}


def sample_to_feeds(sample: Mapping[str, Any], spec: ModelSpec) -> dict[str, np.ndarray]:
    """A training-dataset sample (training/datasets/base.py keys) -> the model's input feeds."""
    from depth_nodes.core.preprocess import image_to_tensor
    kind, names = spec.input_kind, spec.input_names
    if kind in ('rgb', 'gray') and len(names) == 1:
        return {names[0]: image_to_tensor(sample['rgb'], 'rgb8', spec)}
    if kind == 'nir' and len(names) == 1:
        return {names[0]: image_to_tensor(sample['nir'], 'mono8', spec)}
    if kind == 'stereo' and len(names) == 2:
        return {names[0]: image_to_tensor(sample['rgb'], 'rgb8', spec),
                names[1]: image_to_tensor(sample['right'], 'rgb8', spec)}
    raise ValueError(f"INT8 calibration of '{kind}' models with inputs {list(names)} is not "
                     'supported; build this model at fp16')


def calibration_batches_from_dataset(name: str, spec: ModelSpec, split: str = 'train',
                                     root: str | None = None,
                                     limit: int = DEFAULT_CALIBRATION_SAMPLES
                                     ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds from a registered training dataset (needs training/ from a source checkout)."""
    try:
        from training.datasets import build_dataset
    except ImportError:
        raise ValueError('--calibration-dataset needs the training package of a depth_nodes '
                         'source checkout on PYTHONPATH (source tools/env.sh)') from None
    dataset = build_dataset(name, split, root)
    count = min(len(dataset), limit)
    if count == 0:
        raise ValueError(f"dataset '{name}' ({split}) has no samples")
    return (sample_to_feeds(dataset[i], spec) for i in range(count))


def calibration_cache_candidates(onnx_path: Path, cache_dir: Path) -> list[Path]:
    """Where a node looks for an INT8 calibration table: beside the model, then the cache."""
    onnx_path = Path(onnx_path)
    in_cache = f'{onnx_path.stem}.{onnx_model_sha256(onnx_path)[:16]}{CALIBRATION_SUFFIX}'
    return [onnx_path.with_suffix(CALIBRATION_SUFFIX), Path(cache_dir) / in_cache]


def make_entropy_calibrator(batches: Iterable[Mapping[str, np.ndarray]],
                            input_shapes: Mapping[str, tuple[int, ...]],
                            cache_path: Path | None, device_id: int = 0):
    """An ``trt.IInt8EntropyCalibrator2`` fed by ``batches`` with a calibration cache file.

    When ``cache_path`` exists TensorRT reads the table from it and asks for no batches;
    otherwise it calibrates on ``batches`` and the table is written there (atomically).
    """
    import tensorrt as trt
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._device = torch.device('cuda', device_id)
            self._buffers = {name: torch.empty(tuple(shape), dtype=torch.float32,
                                               device=self._device)
                             for name, shape in input_shapes.items()}
            self.cache_path = Path(cache_path) if cache_path else None
            self.batches_used = 0
            self.error: str | None = None   # exceptions cannot cross the C++ callback

        def get_batch_size(self) -> int:
            return 1   # explicit-batch networks: the batch dimension is in the input shape

        def get_batch(self, names):
            try:
                batch = next(self._batches)
                for name in names:
                    value = np.ascontiguousarray(batch[name], dtype=np.float32)
                    self._buffers[name].copy_(torch.from_numpy(value).view(
                        self._buffers[name].shape))
                torch.cuda.current_stream(self._device).synchronize()
            except StopIteration:
                return None
            except Exception as exc:  # noqa: BLE001
                self.error = f'{type(exc).__name__}: {exc}'
                return None
            self.batches_used += 1
            return [self._buffers[name].data_ptr() for name in names]

        def read_calibration_cache(self):
            if self.cache_path is not None and self.cache_path.is_file():
                return self.cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(self.cache_path, bytes(cache))

    return EntropyCalibrator()


# -- the runtime engine ----------------------------------------------------------------------
def _torch_dtype(torch, numpy_dtype) -> Any:
    return torch.from_numpy(np.zeros(0, dtype=numpy_dtype)).dtype


class TensorRTEngine:
    """The Engine protocol (depth_nodes.runtime.engine) on a cached or freshly built engine."""
    backend = 'tensorrt'

    def __init__(self, model_path: Path, options: EngineOptions = EngineOptions()):
        available, reason = availability()
        if not available:
            raise ModelLoadError(model_path, f'backend tensorrt is unavailable: {reason}')
        self.model_path = Path(model_path)
        if self.model_path.suffix != '.onnx':
            raise ModelLoadError(self.model_path, 'the tensorrt backend builds its engine from '
                                                  'the .onnx model')
        if options.precision not in PRECISIONS:
            raise ModelLoadError(self.model_path, f"precision '{options.precision}' not in "
                                                  f'{PRECISIONS}')
        import tensorrt as trt
        import torch
        self._trt, self._torch = trt, torch
        interface = read_onnx_interface(self.model_path)
        dynamic = {n: s for n, s in interface.input_shapes.items() if any(d < 0 for d in s)}
        if dynamic:
            raise ModelLoadError(self.model_path, f'the tensorrt backend needs static input '
                                                  f'shapes; dynamic: {dynamic}')
        self.metadata = interface.metadata
        self.precision = options.precision
        if not 0 <= options.device_id < torch.cuda.device_count():
            raise ModelLoadError(self.model_path, f'CUDA device {options.device_id} does not '
                                                  f'exist ({torch.cuda.device_count()} found)')
        self._device = torch.device('cuda', options.device_id)
        self.gpu_name, capability = gpu_identity(options.device_id)
        self.compute_capability = '.'.join(map(str, capability))
        self.tensorrt_version = trt.__version__
        cache = EngineCache(options.engine_cache_dir or None, log=LOGGER.warning)
        calibration = None
        if self.precision == 'int8':
            candidates = calibration_cache_candidates(self.model_path, cache.directory)
            calibration = next((p for p in candidates if p.is_file()), None)
            if calibration is None:
                raise ModelLoadError(self.model_path, (
                    'precision int8 needs an INT8 calibration table; create it once with '
                    f'`python -m depth_nodes.build_engine --onnx {self.model_path} --precision '
                    'int8 --calibration-dir <images>` (looked for: '
                    + ', '.join(map(str, candidates)) + ')'))
        key = make_engine_key(self.model_path, tensorrt_version=self.tensorrt_version,
                              gpu_name=self.gpu_name, compute_capability=capability,
                              precision=self.precision, calibration_cache=calibration)
        # Kernel timings depend on the GPU and TensorRT only: shared by all models' builds.
        timing_cache = cache.directory / (
            f'trt{self.tensorrt_version}.{safe_file_name(self.gpu_name)}.sm'
            f'{self.compute_capability}{TIMING_CACHE_SUFFIX}')
        # Kept as long as the engine: an ICudaEngine must not outlive its IRuntime.
        self._runtime = runtime = trt.Runtime(default_logger())

        def build() -> bytes:
            LOGGER.warning('building the TensorRT %s engine for %s; this takes seconds to '
                           'minutes and happens once per model, GPU and TensorRT version',
                           self.precision, self.model_path.name)
            calibrator = None
            if calibration is not None:
                calibrator = make_entropy_calibrator((), interface.input_shapes, calibration,
                                                     options.device_id)
            return build_serialized_engine(self.model_path, self.precision, DEFAULT_WORKSPACE_MB,
                                           timing_cache, calibrator)

        with torch.cuda.device(self._device):
            try:
                self.cached = cache.load_or_build(
                    self.model_path, key, build=build, deserialize=runtime.deserialize_cuda_engine,
                    force=options.force_engine_update,
                    details={'workspace_mb': DEFAULT_WORKSPACE_MB})
            except (TensorRTBuildError, EngineCacheError, OSError, ValueError) as exc:
                raise ModelLoadError(self.model_path, str(exc)) from None
            LOGGER.info('%s: %s', self.model_path.name, self.cached.describe())
            self._setup_buffers(self.cached.engine, interface.output_names)
        self._lock = threading.Lock()

    def _setup_buffers(self, engine, onnx_output_names: Sequence[str]) -> None:
        trt, torch = self._trt, self._torch
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise ModelLoadError(self.model_path, 'TensorRT could not create an execution '
                                                  'context (out of GPU memory?)')
        self._stream = torch.cuda.Stream(self._device)
        # name -> (pinned host tensor, device tensor); both allocated once, reused every run.
        self._inputs: dict[str, tuple[Any, Any]] = {}
        self._outputs: dict[str, tuple[Any, Any]] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ModelLoadError(self.model_path, f"engine tensor '{name}' has the dynamic "
                                                      f'shape {shape}')
            dtype = _torch_dtype(torch, trt.nptype(engine.get_tensor_dtype(name)))
            device_buffer = torch.empty(shape, dtype=dtype, device=self._device)
            host_buffer = torch.empty(shape, dtype=dtype, pin_memory=True)
            self._context.set_tensor_address(name, device_buffer.data_ptr())
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._context.set_input_shape(name, shape)
                self._inputs[name] = (host_buffer, device_buffer)
            else:
                self._outputs[name] = (host_buffer, device_buffer)
        torch.cuda.synchronize(self._device)   # allocations done before the stream uses them
        self.input_shapes = {n: tuple(h.shape) for n, (h, _) in self._inputs.items()}
        self.output_names = tuple(n for n in onnx_output_names if n in self._outputs) or \
            tuple(self._outputs)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with self._lock, torch.cuda.device(self._device):
            for name, (host, _) in self._inputs.items():
                if name not in feeds:
                    raise KeyError(f"missing input '{name}' (engine inputs: "
                                   f'{list(self._inputs)})')
                value = np.asarray(feeds[name])
                if value.shape != tuple(host.shape):
                    raise ValueError(f"input '{name}' has shape {value.shape}; the engine was "
                                     f'built for {tuple(host.shape)}')
                host.numpy()[...] = value          # into pinned memory (casts if fp16 I/O)
            with torch.cuda.stream(self._stream):
                for host, device in self._inputs.values():
                    device.copy_(host, non_blocking=True)
                if not self._context.execute_async_v3(self._stream.cuda_stream):
                    raise RuntimeError('TensorRT execution failed (see the TensorRT log)')
                for host, device in self._outputs.values():
                    host.copy_(device, non_blocking=True)
            self._stream.synchronize()
            # Copies: the pinned buffers are overwritten by the next run.
            return {n: self._outputs[n][0].numpy().copy() for n in self.output_names}

    @property
    def build_s(self) -> float | None:
        """Seconds this start spent building the engine (None: it came from the cache)."""
        return self.cached.build_s

    def describe(self) -> str:
        return (f'tensorrt {self.tensorrt_version} {self.precision} on {self.gpu_name} '
                f'(sm {self.compute_capability}); {self.cached.describe()}')
