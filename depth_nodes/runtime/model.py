"""Opening a depth model: find the file, pick the backend, read and override its spec."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from depth_nodes.core.model_spec import ModelSpec, ModelSpecError, spec_from_metadata
from depth_nodes.runtime.backends import create_engine, resolve_backend
from depth_nodes.runtime.engine import Engine, EngineOptions, ModelLoadError

MODEL_SUFFIXES = ('.onnx', '.pt2')
PACKAGE = 'depth_nodes'


@dataclass
class LoadedModel:
    engine: Engine
    spec: ModelSpec
    spec_embedded: bool      # False: the spec was inferred from the graph (user's own model)
    backend_reason: str      # why this backend was chosen (for the log)

    def describe(self) -> str:
        return f'{self.engine.model_path.name} [{self.spec.method}] on {self.engine.describe()}'


def models_directories() -> list[Path]:
    """Where bare model names are looked up: the installed share/ dir, then the checkout."""
    dirs = []
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
        try:
            dirs.append(Path(get_package_share_directory(PACKAGE)) / 'models')
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    dirs.append(Path(__file__).resolve().parents[2] / 'models')
    return dirs


def resolve_model_path(model: str) -> Path:
    """A model parameter (a path, or a name under the package's models/) -> an existing file.

    Validated: it must be a regular file with a model suffix. Raises ModelLoadError naming
    the places searched.
    """
    if not model:
        raise ModelLoadError('<empty>', "parameter 'model' is empty")
    candidate = Path(model).expanduser()
    searched = [candidate]
    if not candidate.is_absolute() and len(candidate.parts) == 1:
        for directory in models_directories():
            for name in (model, model + '.onnx'):
                searched.append(directory / name)
    for path in searched:
        if path.is_file():
            if path.suffix not in MODEL_SUFFIXES:
                raise ModelLoadError(path, f'expected a {" or ".join(MODEL_SUFFIXES)} file')
            return path.resolve()
        if path.exists():
            raise ModelLoadError(path, 'not a regular file')
    raise ModelLoadError(model, 'file not found (looked at: '
                         + ', '.join(str(p) for p in searched) + ')')


def open_model(model: str, backend: str = 'auto', options: EngineOptions = EngineOptions(),
               spec_overrides: Mapping[str, Any] | None = None, warm_up: bool = True
               ) -> LoadedModel:
    """Resolve, load and describe a model; every failure is a ModelLoadError naming the file.

    ``warm_up`` runs the engine once on zeros: first runs allocate memory and pick kernels
    (tens to hundreds of ms), which would otherwise land on the first camera frame.
    """
    path = resolve_model_path(model)
    chosen, reason = resolve_backend(backend)
    engine = create_engine(path, chosen, options)
    try:
        spec, embedded = spec_from_metadata(engine.metadata, engine.input_shapes,
                                            list(engine.output_names))
        spec = spec.with_overrides(spec_overrides or {})
    except (ModelSpecError, ValueError, KeyError) as exc:
        raise ModelLoadError(path, f'invalid model spec: {exc}') from None
    missing = [n for n in spec.input_names if n not in engine.input_shapes]
    if missing or spec.output_name not in engine.output_names:
        raise ModelLoadError(path, f'spec names tensors the model lacks: inputs {missing} / '
                             f"output '{spec.output_name}' (model has inputs "
                             f'{list(engine.input_shapes)}, outputs {list(engine.output_names)})')
    if warm_up:
        _warm_up(engine, path)
    return LoadedModel(engine, spec, embedded, reason)


def _warm_up(engine: Engine, path: Path) -> None:
    shapes = engine.input_shapes
    if any(d <= 0 for shape in shapes.values() for d in shape):
        return  # dynamic input size: nothing sensible to run before the first frame
    try:
        engine.run({name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()})
    except Exception as exc:  # the model loads but cannot run: say so now, not per frame
        raise ModelLoadError(path, f'the model fails on an input of its own size ({exc})'
                             ) from None
