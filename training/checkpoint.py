"""Training checkpoints: atomic writes, plain containers, everything inference needs.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so it loads with
``torch.load(weights_only=True)`` (no pickled classes, nothing executed on load):

- ``format``, ``experiment``, ``method`` and ``method_options`` (to rebuild the method),
- ``config``: the resolved experiment config,
- ``step`` (iterations done), ``stage`` (the stage being trained) and ``world_size`` (the
  number of processes that trained it),
- ``state``: the method's networks and optimizers,
- ``rng``: torch / numpy / python generator states (exact resume),
- ``spec``: the ModelSpec JSON and ``input_size`` [height, width] for inference.
"""
from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from training.config import to_plain
from training.models import DepthMethod, TrainContext, get_method_class
from training.models.base import build_dataclass

FORMAT = 'depth_nodes.training/1'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> Path:
    """torch.save to a temporary file in the same directory, fsync, then os.replace.

    A crash at any moment leaves either the previous checkpoint or the new one, never a
    truncated file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        if path.suffix in ('.onnx', '.pt2'):
            raise CheckpointError(f"'{path}' is an exported model, not a training checkpoint "
                                  '(runs/<experiment>/checkpoints/*.pt)') from None
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {first_line}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != FORMAT:
        raise CheckpointError(f"'{path}' is not a depth_nodes training checkpoint "
                              f'(format {FORMAT})')
    return checkpoint


def method_payload(method: DepthMethod, *, experiment: str, config: Mapping[str, Any],
                   step: int, world_size: int = 1) -> dict[str, Any]:
    """The checkpoint dict of a method at iteration ``step`` of a ``world_size``-process
    run."""
    spec = method.model_spec()
    return {
        'format': FORMAT,
        'experiment': experiment,
        'method': method.name,
        'method_options': to_plain(dataclasses.asdict(method.config)),
        'config': to_plain(config),
        'step': int(step),
        'world_size': int(world_size),
        'stage': method.stage,
        'state': method.state_dict(),
        'rng': rng_state(),
        'spec': spec.to_json(),
        'input_size': [spec.input_height, spec.input_width],
    }


def method_from_checkpoint(checkpoint: Mapping[str, Any] | Path,
                           context: TrainContext = TrainContext(),
                           with_optimizers: bool = True) -> tuple[DepthMethod, dict]:
    """Rebuild the method of a checkpoint (dict or path) with its trained state."""
    if not isinstance(checkpoint, Mapping):
        checkpoint = load_checkpoint(Path(checkpoint), map_location=context.device)
    cls = get_method_class(checkpoint['method'])
    options = build_dataclass(cls.config_class, checkpoint['method_options'],
                              f"checkpoint method_options ({checkpoint['method']})")
    method = cls(options, context)
    method.load_state_dict(checkpoint['state'], with_optimizers=with_optimizers)
    return method, dict(checkpoint)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {'torch': torch.get_rng_state(),
             'numpy': [np_state[0], np_state[1].tolist(), *np_state[2:]],
             'python': random.getstate()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state['torch'].cpu())
    name, keys, *rest = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
