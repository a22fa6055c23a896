"""PyTorch backend on a ``torch.export`` program, for debugging and parity checks.

The export CLI writes ``model.pt2`` beside ``model.onnx``; both carry the same model spec
(here as the extra file ``depth_nodes.model_spec``), and the I/O names in ``depth_nodes.io``.
Loading a .pt2 rebuilds the graph from its serialised form: no training code, no pickle.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from depth_nodes.core.model_spec import METADATA_KEY
from depth_nodes.runtime.engine import EngineOptions, ModelLoadError

IO_KEY = 'depth_nodes.io'


def program_path_for(model_path: Path) -> Path:
    """The .pt2 to use for a model path given as .onnx or .pt2."""
    model_path = Path(model_path)
    return model_path if model_path.suffix == '.pt2' else model_path.with_suffix('.pt2')


def save_program(module, example_inputs: Sequence, path: Path, spec_json: str,
                 input_names: Sequence[str], output_names: Sequence[str]) -> Path:
    """Export ``module`` with ``torch.export`` and save it with the spec and I/O names."""
    import torch
    module = module.eval()
    program = torch.export.export(module, tuple(example_inputs))
    program.example_inputs = None   # else the file carries the example input (MBs of image)
    io = {'inputs': {n: list(t.shape) for n, t in zip(input_names, example_inputs)},
          'outputs': list(output_names)}
    torch.export.save(program, str(path),
                      extra_files={METADATA_KEY: spec_json, IO_KEY: json.dumps(io)})
    return Path(path)


class TorchEngine:
    backend = 'torch'

    def __init__(self, model_path: Path, options: EngineOptions = EngineOptions()):
        import torch
        self._torch = torch
        path = program_path_for(model_path)
        self.model_path = path
        if not path.is_file():
            raise ModelLoadError(path, 'the torch backend needs the torch.export program '
                                       '(.pt2) that training.export writes beside the .onnx')
        extra = {METADATA_KEY: '', IO_KEY: ''}
        try:
            program = torch.export.load(str(path), extra_files=extra)
            io = json.loads(extra[IO_KEY])
        except Exception as exc:
            raise ModelLoadError(path, f'not a usable torch.export program ({exc})') from None
        self._module = program.module()
        if options.intra_op_threads > 0:
            torch.set_num_threads(options.intra_op_threads)
        self._device = torch.device(f'cuda:{options.device_id}' if torch.cuda.is_available()
                                    else 'cpu')
        self._module.to(self._device)
        self.input_shapes = {n: tuple(s) for n, s in io['inputs'].items()}
        self.output_names = tuple(io['outputs'])
        self.metadata = {METADATA_KEY: extra[METADATA_KEY]} if extra[METADATA_KEY] else {}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self._device)
                for n in self.input_shapes]
        with torch.inference_mode():
            out = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.output_names, outs)}

    def describe(self) -> str:
        return f'torch {self._torch.__version__} ({self._device})'
