"""Semi-dense (or sparse) depth in, dense metric depth out: pre-processing + engine +
post-processing for models with ``input_kind`` 'semidense' (Makarov et al.).

ROS-free, shared by semidense_depth_node, offline bag processing, the evaluation CLI and
the tests. The model's input is static (TensorRT needs a fixed profile). A semi-dense map
larger than the model's grid is, for models with the fill channels and
``native_resolution`` (the default), filled at its own resolution and the network run over
it in overlapping tiles of its size (core.semidense.tile_starts: each pixel comes from the
tile it lies deepest inside), so no resampling costs accuracy. Otherwise it is moved onto
the model's grid sample by sample (core.semidense.resample_sparse_depth: no sample is
blurred into its unknown neighbours) and the dense output resized back bilinearly. Known
input depths can be put back exactly (``keep_input_depth``). Two kinds of model (spec
extras.depth_normalization): 'log_geometric_mean' models take the nearest fill, mask,
distances [, intensity and the neighbourhood and linear fills] in metres and return
metres (the scale is handled in their graph, so their output scales with the input); the
older 'frame_percentile' models take depth / s and return depth / s. The fill-channel
models see gaps in pixels of the input, whatever its size, so they run at the input's own
resolution.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.postprocess import output_to_metres, resize_output, squeeze_output
from depth_nodes.core.semidense import (DEPTH_NORMALIZATION, FILL_CHANNELS,
                                        FILL_NORMALIZATION, known_depth,
                                        merge_known_depth, prepare_fills,
                                        resample_sparse_depth,
                                        semidense_fill_tensor, semidense_to_tensor,
                                        TILE_MARGIN, tile_cuts, tile_starts)
from depth_nodes.runtime.estimator import OUTPUT_RESOLUTIONS, DepthResult
from depth_nodes.runtime.model import LoadedModel


# Input channels (without, with intensity) of each depth normalisation (core.semidense):
# 'frame_percentile' models see depth / s and output depth / s; 'log_geometric_mean' models
# see the nearest fill in metres and output metres (the normalisation is in their graph).
NORMALIZATION_CHANNELS = {DEPTH_NORMALIZATION: (2, 3), FILL_NORMALIZATION: (3, 4, 6)}


class SemiDenseEstimator:
    """One semi-dense depth map (metres, NaN unknown) [+ intensity] -> dense metric depth."""

    def __init__(self, model: LoadedModel, output_resolution: str = 'input',
                 native_resolution: bool = True):
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution '{output_resolution}' not in "
                             f'{OUTPUT_RESOLUTIONS}')
        spec = model.spec
        if spec.input_kind != 'semidense':
            raise ValueError(f"a semidense estimator needs a model with input_kind "
                             f"'semidense', this one has '{spec.input_kind}'")
        normalization = spec.extras.get('depth_normalization', DEPTH_NORMALIZATION)
        if normalization not in NORMALIZATION_CHANNELS:
            raise ValueError(f"unknown semidense depth_normalization '{normalization}' "
                             f'(this package knows {sorted(NORMALIZATION_CHANNELS)})')
        channels = NORMALIZATION_CHANNELS[normalization]
        if spec.input_channels not in channels:
            raise ValueError(f"a semidense '{normalization}' model takes "
                             f"{' or '.join(map(str, channels))} channels (the last ones: "
                             f'intensity, neighbourhood and linear fills), this one '
                             f'{spec.input_channels}')
        self._fill_input = normalization == FILL_NORMALIZATION
        named = spec.extras.get('channels')
        if self._fill_input and named is not None and \
                list(named) != list(FILL_CHANNELS[:spec.input_channels]):
            raise ValueError(f'the model was trained on the input channels {list(named)}, '
                             f'this package computes {list(FILL_CHANNELS[:spec.input_channels])}'
                             ': retrain or export it again with this version')
        if self._fill_input and spec.input_channels == len(FILL_CHANNELS):
            prepare_fills()     # the fills' compiled kernels, before frame 1
        self.native_resolution = native_resolution
        self.model = model
        self.output_resolution = output_resolution
        self._input_name = spec.input_names[0]
        if not (spec.input_height and spec.input_width):
            shape = model.engine.input_shapes[self._input_name]
            if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[2:]):
                raise ValueError('the model has no static input size and the spec gives none '
                                 '(set spec.input_height and spec.input_width)')
            spec = replace(spec, input_height=shape[2], input_width=shape[3])
        self.spec: ModelSpec = spec
        self._ranged_spec = spec

    @property
    def needs_intensity(self) -> bool:
        return self.spec.input_channels >= (4 if self._fill_input else 3)

    def spec_for_range(self, depth_range: tuple[float, float] | None) -> ModelSpec:
        if depth_range is None:
            return self.spec
        if (self._ranged_spec.min_depth, self._ranged_spec.max_depth) != tuple(depth_range):
            self._ranged_spec = replace(self.spec, min_depth=depth_range[0],
                                        max_depth=depth_range[1])
        return self._ranged_spec

    def estimate(self, depth: np.ndarray, camera: CameraIntrinsics | None = None,
                 intensity: np.ndarray | None = None,
                 depth_range: tuple[float, float] | None = None,
                 keep_input_depth: bool = False) -> DepthResult:
        """``depth``: (H, W) float32 metres, NaN (or <= 0) where unknown; ``intensity``:
        (H, W) uint8 of the same camera (needed by 3-channel models). ``depth_range``
        replaces the model's valid range (outside is NaN). ``keep_input_depth`` puts every
        known input depth inside the range back into the output unchanged.

        Raises core.encodings.ImageFormatError when the input has no known depth.
        """
        height, width = depth.shape
        grid_h, grid_w = self.spec.input_size
        tiled = (self._fill_input and self.native_resolution and height >= grid_h
                 and width >= grid_w and (height, width) != (grid_h, grid_w))
        if self._fill_input:
            # Tiled: the fills at the input's own resolution, the network over them in
            # overlapping tiles of its size; else everything on the model's grid.
            tensor = semidense_fill_tensor(
                depth, replace(self.spec, input_height=height, input_width=width)
                if tiled else self.spec, intensity)
            known = tensor[0, 1] > 0
            scale = 1.0       # the graph restores the scale: its output is metres
        else:
            tensor, scale = semidense_to_tensor(depth, self.spec, intensity)
        start = time.perf_counter()
        if tiled:
            raw = self._run_tiled(tensor)
        else:
            raw = squeeze_output(self.model.engine.run(
                {self._input_name: tensor})[self.spec.output_name])
        inference_s = time.perf_counter() - start
        out_h, out_w = (height, width) if self.output_resolution == 'input' \
            else (grid_h, grid_w)
        out_camera = None
        if camera is not None:
            out_camera = camera if (out_w, out_h) == (camera.width, camera.height) \
                else camera.scaled(out_w, out_h)
        # The network predicts depth / s (s = 1: metres); resizing before scaling is the
        # same (linear).
        raw = resize_output(raw, out_h, out_w) * np.float32(scale)
        spec = self.spec_for_range(depth_range)
        dense = output_to_metres(raw, spec)
        if keep_input_depth:
            sparse = depth if (out_h, out_w) == (height, width) else \
                resample_sparse_depth(depth, out_h, out_w)
            dense = merge_known_depth(dense, sparse, (spec.min_depth, spec.max_depth))
        known_fraction = float(known_depth(depth).mean())
        if self._fill_input:   # the frame's geometric mean known depth, as the graph sees it
            scale = float(np.exp(np.log(tensor[0, 0][known]).mean()))
        return DepthResult(dense, out_camera, inference_s,
                           {'scale': scale, 'known_fraction': known_fraction})

    def _run_tiled(self, tensor: np.ndarray) -> np.ndarray:
        """(1, C, H, W) input larger than the model's grid -> (H, W) output: the network
        on overlapping windows of its own size (core.semidense.tile_starts), each pixel
        taken from the window it lies deepest inside, so no window border (where the
        network sees zero padding) reaches the output."""
        grid_h, grid_w = self.spec.input_size
        height, width = tensor.shape[-2:]
        # A margin of a quarter tile at most (small test models), TILE_MARGIN for real ones.
        margin = min(TILE_MARGIN, grid_h // 4, grid_w // 4)
        rows, cols = tile_starts(height, grid_h, margin), tile_starts(width, grid_w, margin)
        out = np.empty((height, width), np.float32)
        for y, (top, bottom) in zip(rows, tile_cuts(rows, grid_h, height)):
            for x, (left, right) in zip(cols, tile_cuts(cols, grid_w, width)):
                window = np.ascontiguousarray(tensor[:, :, y:y + grid_h, x:x + grid_w])
                raw = squeeze_output(self.model.engine.run(
                    {self._input_name: window})[self.spec.output_name])
                out[top:bottom, left:right] = raw[top - y:bottom - y, left - x:right - x]
        return out
