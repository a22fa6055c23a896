"""TensorRT backend (NVIDIA GPUs): build an engine from the ONNX model, cache it, run it.

The one module that imports ``tensorrt``, and only inside functions, so importing it (e.g. for
``availability()``) works on machines without TensorRT. Supported: TensorRT 10.3 and later
10.x (``SUPPORTED``); other versions are refused with the reason, and ``backend:=auto`` then
uses ONNX Runtime. TensorRT 8.6 (JetPack 6.0) needs the explicit-batch network flag this code
does not pass; TensorRT 11 removed the precision flags and the implicit INT8 calibrator used
here.

- build: ``trt.Builder`` -> ``create_network(0)`` (explicit batch is the only mode in TRT 10)
  -> ``trt.OnnxParser.parse_from_file`` (errors reported by node name) -> builder config
  (workspace pool limit, TF32 off so fp32 engines match ONNX Runtime to float rounding,
  FP16/INT8 flags, entropy calibrator, timing cache) with one optimisation profile pinned to
  the model's static input shapes -> ``build_serialized_network``.
- cache: depth_nodes.runtime.engine_cache (key = ONNX SHA-256 + TensorRT version + GPU name,
  compute capability and SM count + precision + builder settings), so a node never rebuilds
  an engine the cache already holds.
- run: named I/O tensors; device buffers are torch CUDA tensors allocated once, host staging
  buffers are pinned, copies are asynchronous on a dedicated ``torch.cuda.Stream`` around
  ``execute_async_v3``, and the stream is synchronised before numpy arrays are returned.

INT8 uses implicit quantization with ``IInt8EntropyCalibrator2``. The runtime never reads
images or datasets: calibration data comes in as an iterable of ``{input name: tensor}``
feeds (depth_nodes.calibration_images for a directory of images, training.calibration_feeds
for a training dataset). The calibration table is kept only after a complete calibration and
a successful build, written atomically; a failed calibration leaves no table. NVIDIA
deprecated implicit quantization in TensorRT 10.1 in favour of Q/DQ models; it still works
throughout TensorRT 10.
"""
from __future__ import annotations

import importlib.util
import logging
import re
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from depth_nodes.runtime.engine import PRECISIONS, EngineOptions, ModelLoadError
from depth_nodes.runtime.engine_cache import (EngineCache, EngineCacheError, atomic_write_bytes,
                                              make_engine_key, onnx_model_sha256,
                                              safe_file_name)

LOGGER = logging.getLogger('depth_nodes.tensorrt')

# TensorRT versions this module is written and tested against: >= 10.3, < 11.
SUPPORTED = ((10, 3), (11, 0))
SUPPORTED_TEXT = 'TensorRT >= 10.3, < 11'
# Builder workspace limit of the nodes (MiB). Enough for the tactics of the small convnets
# here; the CLI's --workspace-mb changes it (and so the engine's cache key).
DEFAULT_WORKSPACE_MB = 1024
# INT8 calibration tables: in the engine cache (calibrated on this machine) or beside the
# model (shipped with it); see calibration_cache_candidates.
CALIBRATION_SUFFIX = '.int8.calib'
TIMING_CACHE_SUFFIX = '.timing'


class TensorRTBuildError(RuntimeError):
    """The ONNX parser or the builder refused the model; the message says where and why."""


def parse_version(text: str) -> tuple[int, int] | None:
    """'10.3.0.26' -> (10, 3); None when the text is not a version."""
    match = re.match(r'\s*(\d+)\.(\d+)', str(text))
    return (int(match.group(1)), int(match.group(2))) if match else None


def version_problem(version: str) -> str:
    """'' when ``version`` is a supported TensorRT, else why not (for logs and errors)."""
    parsed = parse_version(version)
    if parsed is None:
        return f"TensorRT reports an unreadable version '{version}'"
    if not SUPPORTED[0] <= parsed < SUPPORTED[1]:
        return f'TensorRT {version} is not supported (depth_nodes needs {SUPPORTED_TEXT})'
    return ''


def availability() -> tuple[bool, str]:
    """(True, '') when a supported TensorRT is importable and a CUDA device exists, else
    (False, why)."""
    try:
        found = importlib.util.find_spec('tensorrt') is not None
    except ValueError:          # a module without a spec already imported under that name
        found = True
    if not found:
        return False, 'TensorRT is not installed'
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001  ImportError, OSError (libnvinfer missing), ...
        return False, f'TensorRT cannot be imported ({type(exc).__name__}: {exc})'
    problem = version_problem(getattr(trt, '__version__', ''))
    if problem:
        return False, problem
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


@dataclass(frozen=True)
class GpuIdentity:
    """What an engine is specific to besides TensorRT: Jetson Orin modules share the name
    and compute capability but differ in SM count, and their engines are not portable."""
    name: str
    capability: tuple[int, int]
    sm_count: int


def gpu_identity(device_id: int = 0) -> GpuIdentity:
    """The name, compute capability and SM count of a CUDA device."""
    import torch
    props = torch.cuda.get_device_properties(device_id)
    return GpuIdentity(props.name, (props.major, props.minor), int(props.multi_processor_count))


@dataclass(frozen=True)
class BuilderSettings:
    """Builder settings an engine depends on; part of its cache key."""
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    tf32: bool = False          # off: fp32 engines compute in fp32, like ONNX Runtime

    def describe(self) -> str:
        return f"tf32={'on' if self.tf32 else 'off'},workspace_mb={int(self.workspace_mb)}"


def engine_key(onnx_path: Path, precision: str, gpu: GpuIdentity, settings: BuilderSettings,
               calibration_table: Path | None = None, version: str | None = None):
    """The cache key of an engine: what build_engine stores and a node looks up."""
    return make_engine_key(onnx_path, tensorrt_version=version or tensorrt_version(),
                           gpu_name=gpu.name, compute_capability=gpu.capability,
                           sm_count=gpu.sm_count, precision=precision,
                           builder_settings=settings.describe(),
                           calibration_cache=calibration_table if precision == 'int8'
                           else None)


def timing_cache_path(cache_dir: Path, version: str, gpu: GpuIdentity) -> Path:
    """The kernel timing cache in an engine cache directory: timings depend on the GPU and
    TensorRT only, so all models' builds share it."""
    return Path(cache_dir) / (f'trt{version}.{safe_file_name(gpu.name)}.sm'
                              f"{'.'.join(map(str, gpu.capability))}.{gpu.sm_count}sms"
                              f'{TIMING_CACHE_SUFFIX}')


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


def float16_weights_folded(onnx_path: Path) -> bytes | None:
    """The model with its float16-stored weights (``training.export --weights float16``:
    FLOAT16 initializer -> Cast to FLOAT) turned back into FLOAT initializers, serialised; None
    when it has none, or without the optional onnx package. TensorRT then parses the same
    graph as a float32 export, with constant weights on every convolution, rather than
    weights computed by a Cast layer."""
    try:
        import onnx
        from onnx import TensorProto, numpy_helper
    except ImportError:
        return None
    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    stored = {t.name: t for t in graph.initializer if t.data_type == TensorProto.FLOAT16}
    casts = [n for n in graph.node if n.op_type == 'Cast' and len(n.input) == 1
             and n.input[0] in stored
             and any(a.name == 'to' and a.i == TensorProto.FLOAT for a in n.attribute)]
    if not casts:
        return None
    cast_ids = {id(n) for n in casts}
    folded = {}
    for node in casts:
        values = numpy_helper.to_array(stored[node.input[0]]).astype(np.float32)
        folded[node.output[0]] = numpy_helper.from_array(values, node.output[0])
    still_used = {name for n in graph.node if id(n) not in cast_ids for name in n.input}
    kept = [t for t in graph.initializer if t.name not in stored or t.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept + list(folded.values()))
    nodes = [n for n in graph.node if id(n) not in cast_ids]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def build_serialized_engine(onnx_path: Path, precision: str = 'fp32',
                            workspace_mb: int = DEFAULT_WORKSPACE_MB,
                            timing_cache: Path | None = None, calibrator=None,
                            logger=None) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine at ``precision``.

    ``timing_cache``: a file of kernel timings reused across builds (read when present,
    written back atomically); ``calibrator``: from make_entropy_calibrator, for int8 (the
    table it produced is in ``calibrator.table``; save it with save_calibration_table).
    Raises TensorRTBuildError naming the offending nodes, or saying why calibration failed.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' not in {PRECISIONS}")
    if precision == 'int8' and calibrator is None:
        raise ValueError('int8 needs a calibrator (calibration images or a calibration table)')
    import tensorrt as trt
    problem = version_problem(getattr(trt, '__version__', ''))
    if problem:
        raise TensorRTBuildError(problem)
    settings = BuilderSettings(workspace_mb)
    onnx_path = Path(onnx_path)
    logger = logger or default_logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)   # TRT 10: always explicit batch (flag deprecated)
    parser = trt.OnnxParser(network, logger)
    folded = float16_weights_folded(onnx_path)
    parsed = (parser.parse(folded, str(onnx_path)) if folded is not None
              else parser.parse_from_file(str(onnx_path)))
    if not parsed:
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise TensorRTBuildError(f"TensorRT's ONNX parser rejected '{onnx_path}':\n"
                                 + format_parser_errors(errors, _onnx_node_names(onnx_path)))
    config = builder.create_builder_config()
    if settings.workspace_mb > 0:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(settings.workspace_mb) << 20)
    if not settings.tf32:
        # On by default from Ampere: fp32 layers would round their inputs to 10-bit mantissas.
        config.clear_flag(trt.BuilderFlag.TF32)
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
        if hasattr(config, 'set_calibration_profile'):   # deprecated with implicit INT8
            config.set_calibration_profile(profile)
    if timing_cache is not None:
        _attach_timing_cache(config, Path(timing_cache))
    serialized = builder.build_serialized_network(network, config)
    if calibrator is not None:
        failure = calibration_failure(calibrator)
        if failure:
            raise TensorRTBuildError(f'INT8 calibration failed: {failure}; no calibration '
                                     'table was written')
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
def _cuda_device(torch, device_id: int):
    """The torch device of CUDA ``device_id`` (one place, so tests can stand a CPU in)."""
    return torch.device('cuda', device_id)


def calibration_cache_candidates(onnx_path: Path, cache_dir: Path) -> list[Path]:
    """Where the CLI and the nodes look for an INT8 calibration table, in this order: the
    engine cache (a table calibrated on this machine, which build_engine writes), then beside
    the model (a table shipped with it)."""
    onnx_path = Path(onnx_path)
    in_cache = f'{onnx_path.stem}.{onnx_model_sha256(onnx_path)[:16]}{CALIBRATION_SUFFIX}'
    return [Path(cache_dir) / in_cache, onnx_path.with_suffix(CALIBRATION_SUFFIX)]


def find_calibration_table(onnx_path: Path, cache_dir: Path) -> Path | None:
    """The first calibration table that exists among calibration_cache_candidates."""
    return next((p for p in calibration_cache_candidates(onnx_path, cache_dir) if p.is_file()),
                None)


def int8_build_command(onnx_path: Path, cache_dir: Path) -> str:
    """The build_engine command that calibrates ``onnx_path`` and leaves the table and the
    engine where a node with ``engine_cache_dir`` = ``cache_dir`` finds them."""
    onnx_path, cache_dir = Path(onnx_path), Path(cache_dir)
    output = cache_dir / f'{safe_file_name(onnx_path.stem)}.int8.engine'
    return ' '.join(['python3 -m depth_nodes.build_engine', '--onnx', shlex.quote(str(onnx_path)),
                     '--precision int8 --calibration-dir <images>', '--engine-cache-dir',
                     shlex.quote(str(cache_dir)), '--output', shlex.quote(str(output))])


class CalibrationFeed:
    """What the calibrator does besides TensorRT and CUDA: hand out feeds one at a time,
    remember why it stopped, and hold the table TensorRT produced until the build is known
    to have succeeded (exceptions cannot cross TensorRT's C++ callbacks)."""

    def __init__(self, batches: Iterable[Mapping[str, np.ndarray]],
                 table_to_read: Path | None = None):
        self._batches = iter(batches)
        self.table_to_read = Path(table_to_read) if table_to_read else None
        self.batches_used = 0
        self.asked = False          # TensorRT asked for a batch (it did not take a table)
        self.exhausted = False      # the feeds ran out (not an error)
        self.table_read = False
        self.error: str | None = None
        self.table: bytes | None = None   # the table TensorRT wrote, in memory only

    def next_feeds(self) -> Mapping[str, np.ndarray] | None:
        self.asked = True
        if self.error is not None or self.exhausted:
            return None
        try:
            batch = next(self._batches)
        except StopIteration:
            self.exhausted = True
            return None
        except Exception as exc:  # noqa: BLE001  reported after the build
            self.error = f'{type(exc).__name__}: {exc}'
            return None
        return batch

    def read_table(self) -> bytes | None:
        if self.table_to_read is not None and self.table_to_read.is_file():
            self.table_read = True
            return self.table_to_read.read_bytes()
        return None

    def keep_table(self, cache) -> None:
        self.table = bytes(cache)


def calibration_failure(calibrator) -> str:
    """Why a calibration cannot be trusted ('' when it can); a calibrator or its feed."""
    feed = getattr(calibrator, 'feed', calibrator)
    if feed.error is not None:
        return feed.error
    if feed.asked and feed.batches_used == 0:
        if feed.table_read:
            return (f"TensorRT did not accept the calibration table '{feed.table_to_read}' "
                    '(another TensorRT or model?) and no calibration images were given')
        return 'no calibration images'
    return ''


def save_calibration_table(calibrator, path: Path) -> bool:
    """Write the table of a complete calibration to ``path`` atomically; False when there is
    nothing new to write (the table was read, not made). Never writes a partial table."""
    feed = getattr(calibrator, 'feed', calibrator)
    failure = calibration_failure(feed)
    if failure:
        raise TensorRTBuildError(f'INT8 calibration failed: {failure}')
    if feed.table is None or feed.batches_used == 0 or not feed.exhausted:
        return False
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, feed.table)
    return True


def make_entropy_calibrator(batches: Iterable[Mapping[str, np.ndarray]],
                            input_shapes: Mapping[str, tuple[int, ...]],
                            table_to_read: Path | None = None, device_id: int = 0,
                            device: Any = None):
    """An ``trt.IInt8EntropyCalibrator2`` fed by ``batches``; its ``feed`` (CalibrationFeed)
    says what happened.

    ``table_to_read``: a calibration table TensorRT uses instead of calibrating (pass it only
    when no batches are given: new calibration data means a new table). The table TensorRT
    writes stays in memory (``feed.table``) until save_calibration_table. ``device``: the
    torch device of the input buffers (default CUDA ``device_id``).
    """
    import tensorrt as trt
    import torch
    dynamic = {n: tuple(s) for n, s in input_shapes.items() if any(d < 0 for d in s)}
    if dynamic:
        raise ValueError(f'INT8 calibration needs static input shapes; dynamic: {dynamic}')
    device = _cuda_device(torch, device_id) if device is None else torch.device(device)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.feed = CalibrationFeed(batches, table_to_read)
            self._buffers = {name: torch.empty(tuple(shape), dtype=torch.float32,
                                               device=device)
                             for name, shape in input_shapes.items()}

        def get_batch_size(self) -> int:
            return 1   # explicit-batch networks: the batch dimension is in the input shape

        def get_batch(self, names):
            batch = self.feed.next_feeds()
            if batch is None:
                return None
            try:
                for name in names:
                    value = np.ascontiguousarray(batch[name], dtype=np.float32)
                    self._buffers[name].copy_(torch.from_numpy(value).view(
                        self._buffers[name].shape))
                if device.type == 'cuda':
                    torch.cuda.current_stream(device).synchronize()
            except Exception as exc:  # noqa: BLE001  reported after the build
                self.feed.error = f'{type(exc).__name__}: {exc}'
                return None
            self.feed.batches_used += 1
            return [self._buffers[name].data_ptr() for name in names]

        def read_calibration_cache(self):
            return self.feed.read_table()

        def write_calibration_cache(self, cache) -> None:
            self.feed.keep_table(cache)

    return EntropyCalibrator()


# -- the runtime engine ----------------------------------------------------------------------
def _torch_dtype(torch, numpy_dtype) -> Any:
    return torch.from_numpy(np.zeros(0, dtype=numpy_dtype)).dtype


def numpy_dtype(trt, tensor_dtype, name: str) -> np.dtype:
    """The numpy type of an engine I/O tensor; ValueError for types numpy lacks (BF16, FP8)."""
    try:
        return np.dtype(trt.nptype(tensor_dtype))
    except TypeError:
        raise ValueError(f"engine tensor '{name}' is {tensor_dtype}, which has no numpy type: "
                         'export the model with float32 (or float16) inputs and outputs'
                         ) from None


class TensorRTEngine:
    """The Engine protocol (depth_nodes.runtime.engine) on a cached or freshly built engine.

    Every failure while opening is a ModelLoadError naming the model: an unsupported
    TensorRT, a parser or builder refusal, CUDA out of memory, an I/O type numpy lacks.
    """
    backend = 'tensorrt'

    def __init__(self, model_path: Path, options: EngineOptions = EngineOptions()):
        self.model_path = Path(model_path)
        available, reason = availability()
        if not available:
            raise ModelLoadError(model_path, f'backend tensorrt is unavailable: {reason}')
        if self.model_path.suffix != '.onnx':
            raise ModelLoadError(self.model_path, 'the tensorrt backend builds its engine from '
                                                  'the .onnx model')
        if options.precision not in PRECISIONS:
            raise ModelLoadError(self.model_path, f"precision '{options.precision}' not in "
                                                  f'{PRECISIONS}')
        try:
            self._open(options)
        except ModelLoadError:
            raise
        except (TensorRTBuildError, EngineCacheError, OSError, ValueError) as exc:
            raise ModelLoadError(self.model_path, str(exc)) from None
        except (RuntimeError, TypeError, AttributeError) as exc:
            # torch (CUDA out of memory, ...) and bindings that differ from TensorRT 10's
            raise ModelLoadError(self.model_path, f'TensorRT or CUDA failed: '
                                                  f'{type(exc).__name__}: {exc}') from None

    def _open(self, options: EngineOptions) -> None:
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
        self._device = _cuda_device(torch, options.device_id)
        self.gpu = gpu_identity(options.device_id)
        self.gpu_name = self.gpu.name
        self.compute_capability = '.'.join(map(str, self.gpu.capability))
        self.tensorrt_version = trt.__version__
        cache = EngineCache(options.engine_cache_dir or None, log=LOGGER.warning)
        settings = BuilderSettings(DEFAULT_WORKSPACE_MB)
        calibration = None
        if self.precision == 'int8':
            calibration = find_calibration_table(self.model_path, cache.directory)
            if calibration is None:
                raise ModelLoadError(self.model_path, (
                    'precision int8 needs an INT8 calibration table; create it once with `'
                    + int8_build_command(self.model_path, cache.directory) + '` (looked for: '
                    + ', '.join(map(str, calibration_cache_candidates(
                        self.model_path, cache.directory))) + ')'))
        key = engine_key(self.model_path, self.precision, self.gpu, settings, calibration,
                         self.tensorrt_version)
        timing_cache = timing_cache_path(cache.directory, self.tensorrt_version, self.gpu)
        # Kept as long as the engine: an ICudaEngine must not outlive its IRuntime.
        self._runtime = runtime = trt.Runtime(default_logger())

        def build() -> bytes:
            LOGGER.warning('building the TensorRT %s engine for %s; this takes seconds to '
                           'minutes and happens once per model, GPU and TensorRT version',
                           self.precision, self.model_path.name)
            calibrator = None
            if calibration is not None:
                calibrator = make_entropy_calibrator((), interface.input_shapes, calibration,
                                                     options.device_id, self._device)
            return build_serialized_engine(self.model_path, self.precision,
                                           settings.workspace_mb, timing_cache, calibrator)

        with torch.cuda.device(self._device):
            self.cached = cache.load_or_build(
                self.model_path, key, build=build, deserialize=runtime.deserialize_cuda_engine,
                force=options.force_engine_update)
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
            dtype = _torch_dtype(torch, numpy_dtype(trt, engine.get_tensor_dtype(name), name))
            device_buffer = torch.empty(shape, dtype=dtype, device=self._device)
            host_buffer = torch.empty(shape, dtype=dtype,
                                      pin_memory=self._device.type == 'cuda')
            self._context.set_tensor_address(name, device_buffer.data_ptr())
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._context.set_input_shape(name, shape)
                self._inputs[name] = (host_buffer, device_buffer)
            else:
                self._outputs[name] = (host_buffer, device_buffer)
        if self._device.type == 'cuda':
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
                f'(sm {self.compute_capability}, {self.gpu.sm_count} SMs); '
                f'{self.cached.describe()}')
