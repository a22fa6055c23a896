"""The contract between the generic trainer / evaluator / exporter and one training method.

A method owns its networks, losses and optimizers and knows how to step them; the trainer
owns everything around that (config, data loading, devices, DDP, seeds, checkpoints, logs).
The contract is small enough for every paper in this project:

- multi-stage training (Eigen et al.: coarse, then fine with the coarse stack frozen):
  ``stages`` + ``begin_stage(stage)``;
- several networks and optimizers stepped in one iteration (Pix2Pix G + D; CycleGAN two G,
  two D and projection heads): ``training_step`` does its own backward passes and optimizer
  steps and returns scalars to log; ``networks()`` / ``optimizers()`` are dicts;
- unpaired sampling of two domains: ``training_dataset`` may wrap the dataset (e.g. pair
  each sample with a random one of the other domain) before the trainer batches it;
- stereo (left/right, no ground truth) and semi-dense input (sparse depth + mask): samples
  are plain dicts (training/datasets/base.py), ``make_batch`` picks the keys it needs and
  ``model_spec().input_names`` can name several network inputs.

Batches are made with depth_nodes.core.preprocess, the code the nodes run, so a network sees
in training exactly the tensors it gets on the robot.
"""
from __future__ import annotations

import abc
import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import image_to_tensor, letterbox_box


@dataclass(frozen=True)
class TrainContext:
    """Where a method runs: its device and, under torch.distributed, its rank."""
    device: torch.device = torch.device('cpu')
    world_size: int = 1
    rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def parallel(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped for data-parallel training (DDP) when distributed.

        Methods call this on each network they train in the current stage and run the
        forward pass through the wrapper, so gradients are averaged over all processes.
        """
        if not self.distributed:
            return module
        device_ids = [self.device.index] if self.device.type == 'cuda' else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


@dataclass(frozen=True)
class ExportBundle:
    """What training.export turns into model.onnx + model.pt2."""
    module: nn.Module                       # eval mode, on CPU
    example_inputs: tuple[torch.Tensor, ...]
    spec: ModelSpec                         # input_names / output_name name the tensors


class DepthMethod(abc.ABC):
    """One paper's method. Subclasses set the class attributes and implement the abstract
    methods; ``METHODS`` in training/models/__init__.py registers them by ``name``."""

    name: ClassVar[str]
    config_class: ClassVar[type]                       # frozen dataclass of the method options
    stages: ClassVar[tuple[str, ...]] = ('main',)      # trained in this order
    sample_keys: ClassVar[tuple[str, ...]] = ('rgb', 'depth')  # sample keys make_batch reads

    def __init__(self, config: Any, context: TrainContext = TrainContext()):
        if not isinstance(config, self.config_class):
            raise TypeError(f'{self.name} needs a {self.config_class.__name__}, '
                            f'got {type(config).__name__}')
        self.config = config
        self.context = context
        self.stage = self.stages[0]

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None,
                     context: TrainContext = TrainContext()) -> 'DepthMethod':
        return cls(build_dataclass(cls.config_class, options or {}, f'method {cls.name}'),
                   context)

    # --- networks and optimizers -------------------------------------------------------
    @abc.abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network by name (unwrapped, not DDP): what checkpoints save."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer by name (all stages): what checkpoints save."""

    def begin_stage(self, stage: str) -> None:
        """Prepare ``stage`` (freeze / unfreeze, wrap for DDP). Also called on resume."""
        if stage not in self.stages:
            raise ValueError(f"method {self.name} has no stage '{stage}' (stages: "
                             f'{self.stages})')
        self.stage = stage

    # --- data ----------------------------------------------------------------------------
    def training_dataset(self, dataset: Sequence, seed: int) -> Sequence:
        """The dataset the trainer samples from; override to pair two domains.

        The trainer indexes it with the keys ``dataset`` takes: ints, or (epoch, index)
        pairs when ``dataset.takes_epoch`` is true (per-epoch augmentation); a wrapper
        forwards those keys and copies ``takes_epoch``.
        """
        return dataset

    @abc.abstractmethod
    def make_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Samples (numpy dicts) -> CPU tensors; runs in DataLoader workers.

        Validation (Trainer.validate) reads ground truth from ``log_depth`` (B, 1, h, w) and
        ``valid`` (bool, same shape) at the resolution of ``predict_depth``
        (``depth_targets`` makes both); batches without them cannot be validated.
        """

    # --- training and inference --------------------------------------------------------
    @abc.abstractmethod
    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        """One iteration of the current stage (forward, backward, optimizer steps).

        ``batch`` is on the method's device. Returns scalars to log (e.g. losses).
        """

    @abc.abstractmethod
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, h, w) metric depth from a batch of make_batch, in eval mode, no gradients."""

    @abc.abstractmethod
    def model_spec(self) -> ModelSpec:
        """The spec the runtime reads from the exported model."""

    @abc.abstractmethod
    def export_module(self) -> nn.Module:
        """The inference network (inputs ``model_spec().input_names`` -> raw output)."""

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Batch-1 inputs of the spec's size (fixed seed, so exports are reproducible)."""
        spec = self.model_spec()
        generator = torch.Generator().manual_seed(0)
        shape = (1, spec.input_channels, spec.input_height, spec.input_width)
        return tuple(torch.randn(shape, generator=generator) for _ in spec.input_names)

    def export_bundle(self) -> ExportBundle:
        # A copy, so exporting mid-training leaves the method's networks where they were.
        module = copy.deepcopy(self.export_module()).cpu().eval().requires_grad_(False)
        return ExportBundle(module, self.example_inputs(), self.model_spec())

    # --- modes and state ---------------------------------------------------------------
    def train(self, mode: bool = True) -> 'DepthMethod':
        for network in self.networks().values():
            network.train(mode)
        return self

    def eval(self) -> 'DepthMethod':
        return self.train(False)

    def state_dict(self) -> dict[str, Any]:
        """Plain containers of tensors (loadable with torch.load(weights_only=True))."""
        return {'stage': self.stage,
                'networks': {k: v.state_dict() for k, v in self.networks().items()},
                'optimizers': {k: v.state_dict() for k, v in self.optimizers().items()}}

    def load_state_dict(self, state: Mapping[str, Any], with_optimizers: bool = True) -> None:
        networks, optimizers = self.networks(), self.optimizers()
        missing = set(networks) - set(state['networks'])
        if missing:
            raise KeyError(f'checkpoint lacks networks {sorted(missing)} of method {self.name}')
        for name, network in networks.items():
            network.load_state_dict(state['networks'][name])
        if with_optimizers:
            for name, optimizer in optimizers.items():
                if name in state.get('optimizers', {}):
                    optimizer.load_state_dict(state['optimizers'][name])
        self.begin_stage(state.get('stage', self.stages[0]))


# --- helpers shared by the methods ------------------------------------------------------

def linear_decay_factor(step: int, constant_steps: int, decay_steps: int) -> float:
    """The learning-rate factor of pix2pix's and CycleGAN's schedule (Isola et al.'s and Zhu
    et al.'s code, 'linear' policy): 1 for ``constant_steps``, then linearly down towards 0
    over ``decay_steps``; 1 throughout when ``decay_steps`` is 0."""
    if decay_steps <= 0 or step < constant_steps:
        return 1.0
    return max(0.0, 1.0 - (step - constant_steps + 1) / (decay_steps + 1))


def build_dataclass(cls: type, values: Mapping[str, Any], where: str):
    """A frozen dataclass from a mapping; unknown keys are an error naming ``where``.

    Lists become tuples (YAML has no tuples) so the result stays hashable and frozen.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f'{where}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}')
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{where}: {exc}') from None


def require_keys(sample: Mapping[str, Any], keys: Sequence[str], method: str) -> None:
    missing = [k for k in keys if sample.get(k) is None]
    if missing:
        raise KeyError(f"sample '{sample.get('name', '?')}' lacks {missing}, which method "
                       f'{method} needs')


def images_to_batch(images: Sequence[np.ndarray], encoding: str, spec: ModelSpec
                    ) -> torch.Tensor:
    """Camera images -> (B, C, H, W) float32 through the nodes' own pre-processing
    (letterboxed for a spec with resize_mode 'letterbox': depth_targets must match)."""
    return torch.from_numpy(np.concatenate([image_to_tensor(im, encoding, spec)
                                            for im in images]))


def rgb_image_spec(method: str, config: Any, **output: Any) -> ModelSpec:
    """The spec of a network on one RGB camera image: input 'image' at the config's
    input_height x input_width, normalised with its mean / std, depth within its
    [min_depth, max_depth]; ``output`` gives the output fields (name, kind, extras, ...)."""
    return ModelSpec(method=method, input_kind='rgb', input_names=('image',),
                     input_height=config.input_height, input_width=config.input_width,
                     input_channels=3, color_order='rgb', mean=tuple(config.mean),
                     std=tuple(config.std), min_depth=config.min_depth,
                     max_depth=config.max_depth, **output)


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) metres with NaN unknown -> (height, width), NaN where no pixel was known.

    Shrinking averages the known depths under each output pixel (area weights), so holes
    neither pull the average to zero nor erase sparse (LiDAR) ground truth; enlarging takes
    the nearest pixel.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth.copy()
    known = np.isfinite(depth) & (depth > 0)
    if height * width >= depth.shape[0] * depth.shape[1]:
        out = cv2.resize(np.where(known, depth, np.nan), (width, height),
                         interpolation=cv2.INTER_NEAREST)
        return out.astype(np.float32)
    total = cv2.resize(np.where(known, depth, 0).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_AREA)
    weight = cv2.resize(known.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    with np.errstate(invalid='ignore', divide='ignore'):
        out = total / weight
    out[weight <= 1e-6] = np.nan
    return out.astype(np.float32)


def letterbox_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Depth placed as core/preprocess.letterbox_image places its image: resized into the
    letterbox (resize_depth), unknown (NaN) in the padding."""
    box_h, box_w, top, left = letterbox_box(depth.shape[0], depth.shape[1], height, width)
    out = np.full((height, width), np.nan, np.float32)
    out[top:top + box_h, left:left + box_w] = resize_depth(depth, box_h, box_w)
    return out


def depth_targets(depths: Sequence[np.ndarray], height: int, width: int, min_depth: float,
                  max_depth: float, letterbox: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth depths -> ((B, 1, h, w) log depth, (B, 1, h, w) bool mask of valid pixels).

    Pixels outside [min_depth, max_depth] are masked; masked log depth is 0, never NaN.
    ``letterbox``: the targets of a letterboxed input (letterbox_depth), the padding masked.
    """
    fit = letterbox_depth if letterbox else resize_depth
    resized = np.stack([fit(d, height, width) for d in depths])[:, None]
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(resized) & (resized >= min_depth) & (resized <= max_depth)
    log_depth = np.zeros_like(resized)
    log_depth[valid] = np.log(resized[valid])
    return torch.from_numpy(log_depth), torch.from_numpy(valid)


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}
