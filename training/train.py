"""Train a depth method: ``python -m training.train --config training/configs/<exp>.yaml``.

    python -m training.train --config training/configs/eigen_synthetic_demo.yaml \
        trainer.batch_size=16 method.options.width_scale=0.5 --device cpu
    torchrun --nproc_per_node=2 -m training.train --config ...   # DDP (gloo CPU / nccl GPU)

The run directory (``trainer.run_dir``, default runs/<experiment>) receives the resolved
config (config.yaml), checkpoints (checkpoints/last.pt, and checkpoints/<stage>.pt at the
end of each stage), TensorBoard logs (tensorboard/) and, at the end, model.onnx + model.pt2.
Running the same command again resumes from checkpoints/last.pt (``--resume never`` starts
over). Runs are deterministic for a given seed: model initialisation, the data order (a
seeded permutation per epoch, resumed at the exact sample) and the torch / numpy / python
random states (saved in every checkpoint) all follow from ``trainer.seed``.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from training.checkpoint import (CheckpointError, load_checkpoint, method_payload,
                                 restore_rng_state, rng_state, save_checkpoint)
from training.config import (DEVICES, ConfigError, ExperimentConfig, load_config,
                             save_resolved_config, to_plain)
from training.float16_weights import plain_state_dict
from training.metrics import DepthEvalProtocol, MetricAverager, depth_metrics
from training.models import DepthMethod, TrainContext, get_method_class
from training.models.base import batch_to_device


@dataclass(frozen=True)
class DistributedEnv:
    """The process's place in a torchrun (or test-spawned) job, from the environment."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environ(cls) -> 'DistributedEnv':
        return cls(int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1)),
                   int(os.environ.get('LOCAL_RANK', 0)))


class TrainingInterrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM stopped training after a whole iteration; the checkpoint
    at that iteration is saved (every process of a DDP job stops at the same one)."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f'interrupted at step {step}; saved {checkpoint}')
        self.step, self.checkpoint = step, checkpoint


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag read between iterations, so an interrupt never
    leaves a half-stepped model (GANs step several optimizers per iteration). A second
    Ctrl-C raises KeyboardInterrupt at once. Only the main thread may install handlers."""

    def __init__(self, announce: bool = True):
        self.requested, self.announce = False, announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> 'StopRequest':
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            print(f'\n{signal.Signals(signum).name}: stopping after this iteration and saving '
                  'a checkpoint (Ctrl-C again to quit without saving)', file=sys.stderr,
                  flush=True)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path
    onnx: Path | None
    val_metrics: dict[str, float]
    method: DepthMethod


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    if requested not in DEVICES:
        raise ConfigError(f"device '{requested}' not in {DEVICES}")
    if requested == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('device cuda was requested but no CUDA device is available')
    if requested == 'cuda' or (requested == 'auto' and torch.cuda.is_available()):
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: numpy and python generators follow the worker's torch seed
    (itself derived from the loader's seeded generator), so augmentations are reproducible."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


class ResumableSampler(Sampler):
    """Endless shuffled sample indices for one process, starting at any position.

    Epoch e is a permutation seeded with (seed, e), padded to split evenly over the
    processes as DistributedSampler does; rank r takes every world_size-th index from r.
    ``start`` = samples this process already consumed, so a resumed run continues with
    exactly the samples the interrupted one would have used next. ``with_epoch`` yields
    (epoch, index) keys instead, for datasets that draw per-epoch augmentations.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start: int = 0, with_epoch: bool = False):
        if size < 1:
            raise ValueError('cannot sample from an empty dataset')
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.start, self.with_epoch = start, with_epoch
        self.per_rank = math.ceil(size / world_size)

    def epoch_indices(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        padded = (order * math.ceil(self.per_rank * self.world_size / self.size))
        return padded[:self.per_rank * self.world_size][self.rank::self.world_size]

    def __iter__(self) -> Iterator:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            indices = self.epoch_indices(epoch)[offset:]
            yield from ((epoch, i) for i in indices) if self.with_epoch else indices
            epoch, offset = epoch + 1, 0


class CachedDataset:
    """Keeps samples in memory after their first read (for static, costly datasets)."""

    def __init__(self, dataset: Sequence):
        self.dataset = dataset
        self._cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if index not in self._cache:
            self._cache[index] = self.dataset[index]
        return self._cache[index]


class EpochAugmentedDataset:
    """Sample ``index`` of epoch ``epoch`` augmented (training/datasets/augment.py) with a
    generator seeded by (seed, epoch, index): indexed by the (epoch, index) keys of
    ResumableSampler, so augmentations differ every epoch yet replay exactly on resume and
    in any DataLoader worker."""
    takes_epoch = True

    def __init__(self, dataset: Sequence, config, seed: int):
        self.dataset, self.config, self.seed = dataset, config, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        from training.datasets.augment import augment
        epoch, index = key
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))
        return augment(self.dataset[index], rng, self.config)


def open_dataset(config: ExperimentConfig, split: str, options: Mapping[str, Any] | None = None,
                 augment: bool = False) -> Sequence:
    """A dataset of the config (cached / augmented as configured; augmentation on request)."""
    from training.datasets import build_dataset
    data = config.data
    if data.source == 'rosbag':
        from training.datasets.rosbag import RosbagDataset
        try:
            dataset = RosbagDataset(split, data.root, bags=data.bags, topics=data.topics,
                                    method=config.method.name, holdout=data.holdout,
                                    sync_tolerance=data.sync_tolerance)
        except ValueError as exc:
            raise ConfigError(f'data (rosbag): {exc}') from None
        if split == data.train_split and len(dataset) == 0:
            raise ConfigError(f'data (rosbag): no {split} samples in {list(data.bags)} with '
                              f'topics {dict(data.topics)} (stamps within '
                              f'{data.sync_tolerance} s?)')
    else:
        try:
            dataset = build_dataset(data.dataset, split, data.root,
                                    **dict(data.options if options is None else options))
        except FileNotFoundError as exc:     # a missing dataset directory or file
            raise ConfigError(f'data.root: {exc}') from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f'data ({data.dataset}, split {split}): {exc}') from None
    if data.cache:
        dataset = CachedDataset(dataset)
    if augment and data.augment is not None:
        from training.datasets.augment import AugmentConfig
        from training.models.base import build_dataclass
        settings = build_dataclass(AugmentConfig, data.augment, 'data.augment')
        dataset = EpochAugmentedDataset(dataset, settings, config.trainer.seed)
    return dataset


class Trainer:
    """Runs a method's stages over a dataset with logging, validation and checkpoints."""

    def __init__(self, config: ExperimentConfig, method: DepthMethod, dataset: Sequence,
                 val_dataset: Sequence | None, context: TrainContext, progress: bool = True):
        self.config = config
        self.method = method
        self.dataset = method.training_dataset(dataset, config.trainer.seed)
        self.val_dataset = val_dataset
        self.context = context
        self.run_dir = config.run_dir
        self.checkpoint_dir = self.run_dir / 'checkpoints'
        self.step = 0
        self.progress = progress and context.rank == 0
        self.is_main = context.rank == 0
        self.schedule = self._schedule()
        self.writer = None
        self._saved_step = -1

    def _schedule(self) -> list[tuple[str, int, int]]:
        """(stage, first step, end step) for each stage with iterations, in method order."""
        steps = dict(self.config.trainer.stage_steps)
        unknown = set(steps) - set(self.method.stages)
        if unknown:
            raise ConfigError(f'trainer.stage_steps names stages {sorted(unknown)} that '
                              f'method {self.method.name} lacks (stages: {self.method.stages})')
        schedule, begin = [], 0
        for stage in self.method.stages:
            if steps.get(stage, 0) > 0:
                schedule.append((stage, begin, begin + steps[stage]))
                begin += steps[stage]
        if not schedule:
            raise ConfigError(f'trainer.stage_steps gives no iterations to any stage of '
                              f'{self.method.name} {self.method.stages}')
        return schedule

    @property
    def total_steps(self) -> int:
        return self.schedule[-1][2]

    # --- checkpoints -------------------------------------------------------------------
    def resume(self, source: str | Path) -> bool:
        """Load 'auto' (last.pt when present), a checkpoint path, or nothing ('never')."""
        if source == 'never':
            return False
        path = self.checkpoint_dir / 'last.pt' if source == 'auto' else Path(source)
        if source == 'auto' and not path.is_file():
            return False
        checkpoint = load_checkpoint(path, map_location=self.context.device)
        if checkpoint['method'] != self.method.name:
            raise CheckpointError(f"checkpoint '{path}' is of method {checkpoint['method']}, "
                                  f'the config trains {self.method.name}')
        ours = to_plain(self.config.to_dict()['method']['options'])
        differing = sorted(k for k in set(ours) | set(checkpoint['method_options'])
                           if ours.get(k) != checkpoint['method_options'].get(k))
        if differing:
            raise CheckpointError(f"checkpoint '{path}' was trained with different method "
                                  f'options {differing}; use another run_dir or --resume never')
        self.method.load_state_dict(checkpoint['state'])
        restore_rng_state(checkpoint['rng'])
        self.step = int(checkpoint['step'])
        self._log(f'resumed from {path} at step {self.step} (stage {checkpoint["stage"]})')
        saved_world = int(checkpoint.get('world_size', 1))
        if saved_world != self.context.world_size:
            self._log(f'warning: {path} was written by {saved_world} process(es) and is '
                      f'resumed by {self.context.world_size}: the global batch changes from '
                      f'{saved_world} x {self.config.trainer.batch_size} to '
                      f'{self.context.world_size} x {self.config.trainer.batch_size} and the '
                      'data order differs from an uninterrupted run')
        return True

    def save(self, *names: str) -> Path | None:
        if not self.is_main:
            self._saved_step = self.step
            return None
        payload = method_payload(self.method, experiment=self.config.experiment,
                                 config=self.config.to_dict(), step=self.step,
                                 world_size=self.context.world_size)
        path = None
        for name in names:
            path = save_checkpoint(self.checkpoint_dir / f'{name}.pt', payload)
        self._saved_step = self.step
        return path

    # --- the loop ----------------------------------------------------------------------
    def _loader(self) -> Iterator[dict[str, torch.Tensor]]:
        t = self.config.trainer
        sampler = ResumableSampler(len(self.dataset), t.seed, self.context.rank,
                                   self.context.world_size, start=self.step * t.batch_size,
                                   with_epoch=getattr(self.dataset, 'takes_epoch', False))
        generator = torch.Generator().manual_seed(
            t.seed * 1_000_003 + self.context.rank * 7_919 + self.step)
        loader = DataLoader(self.dataset, batch_size=t.batch_size, sampler=sampler,
                            collate_fn=self.method.make_batch,
                            num_workers=self.config.data.num_workers,
                            worker_init_fn=seed_worker, generator=generator, drop_last=True,
                            pin_memory=self.context.device.type == 'cuda')
        return iter(loader)

    def run(self, until_step: int | None = None) -> TrainResult:
        t = self.config.trainer
        target = self.total_steps if until_step is None else min(until_step, self.total_steps)
        if self.is_main:
            save_resolved_config(self.config, self.run_dir)
            from torch.utils.tensorboard import SummaryWriter
            # purge_step hides the points a previous run logged after its checkpoint (they
            # are logged again); the checkpoint's own step was logged before it was saved.
            self.writer = SummaryWriter(str(self.run_dir / 'tensorboard'),
                                        purge_step=self.step + 1 if self.step else None)
        from tqdm import tqdm
        bar = tqdm(total=target, initial=min(self.step, target), disable=not self.progress,
                   unit='it', dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30)
        checkpoint = self.checkpoint_dir / 'last.pt'
        started, started_step = time.perf_counter(), self.step
        try:
            with StopRequest(announce=self.is_main) as stop:
                for stage, _begin, end in self.schedule:
                    if self.step >= end:
                        continue
                    if self.step >= target:
                        break
                    self.method.begin_stage(stage)
                    bar.set_description(stage)
                    batches = self._loader()
                    while self.step < min(end, target):
                        batch = batch_to_device(next(batches), self.context.device)
                        logs = self.method.training_step(batch, self.step)
                        bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
                        if bad:
                            raise FloatingPointError(
                                f'non-finite training value(s) {bad} at step {self.step} '
                                f'(stage {stage}); lower the learning rates or enable '
                                'grad_clip_norm')
                        self.step += 1
                        bar.update(1)
                        bar.set_postfix(_progress_losses(logs), refresh=False)
                        self._after_step(stage, logs, started, started_step)
                        if self._stop_requested(stop):
                            if self._saved_step != self.step:
                                self.save('last')
                            raise TrainingInterrupted(self.step, checkpoint)
                    if self.step == end:
                        self.save('last', stage)
            if self._saved_step != self.step:
                self.save('last')
            self._log(f'{self.step - started_step} iterations in '
                      f'{time.perf_counter() - started:.0f} s (now at step {self.step})')
            val_metrics = self.validate() if self.val_dataset is not None else {}
            if val_metrics:
                self._log('validation: ' + ', '.join(f'{k} {v:.4f}'
                                                     for k, v in val_metrics.items()))
            onnx_path = None
            if self.step == self.total_steps and t.export_onnx and self.is_main:
                from training.export import export_onnx
                report = export_onnx(self.method, self.run_dir / 'model.onnx')
                onnx_path = Path(report['onnx'])
                self._log(f"exported {onnx_path} (ONNX Runtime vs PyTorch max abs error "
                          f"{report['max_abs_error']:.3g})")
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        return TrainResult(self.run_dir, self.step, checkpoint, onnx_path, val_metrics,
                           self.method)

    def _stop_requested(self, stop: StopRequest) -> bool:
        """Whether any process was asked to stop (all-reduced under DDP, so every process
        stops after the same iteration and none waits in a collective for the others)."""
        if self.context.world_size == 1:
            return stop.requested
        flag = torch.tensor([float(stop.requested)], device=self.context.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _after_step(self, stage: str, logs: Mapping[str, float], started: float,
                    started_step: int) -> None:
        t = self.config.trainer
        if self.is_main and t.log_every and self.step % t.log_every == 0:
            for key, value in logs.items():
                self.writer.add_scalar(f'train/{stage}/{key}', value, self.step)
            elapsed = time.perf_counter() - started
            self.writer.add_scalar('train/iterations_per_s',
                                   (self.step - started_step) / max(elapsed, 1e-9), self.step)
        if t.checkpoint_every and self.step % t.checkpoint_every == 0:
            self.save('last')
        if t.val_every and self.step % t.val_every == 0 and self.val_dataset is not None:
            for key, value in self.validate().items():
                if self.is_main:
                    self.writer.add_scalar(f'val/{key}', value, self.step)

    def validate(self) -> dict[str, float]:
        """Depth metrics on the first val_batches batches, at the network's output size.

        The global random states are restored afterwards (the loader draws a seed from
        torch's), so training after a validation continues exactly as a run resumed from
        the checkpoint saved before it."""
        if not self.is_main:
            return {}
        saved = rng_state()
        try:
            return self._validate()
        finally:
            restore_rng_state(saved)

    def _validate(self) -> dict[str, float]:
        t = self.config.trainer
        loader = DataLoader(self.val_dataset, batch_size=t.batch_size, shuffle=False,
                            collate_fn=self.method.make_batch, num_workers=0)
        spec = self.method.model_spec()
        protocol = DepthEvalProtocol(min_depth=spec.min_depth, max_depth=spec.max_depth)
        averager = MetricAverager()
        self.method.eval()
        try:
            for index, batch in enumerate(loader):
                if index >= t.val_batches:
                    break
                batch = batch_to_device(batch, self.context.device)
                with torch.no_grad():
                    pred = self.method.predict_depth(batch).cpu().numpy()
                gt = torch.where(batch['valid'], batch['log_depth'].exp(),
                                 torch.full_like(batch['log_depth'], float('nan')))
                for p, g in zip(pred, gt[:, 0].cpu().numpy()):
                    if np.isfinite(g).any():
                        averager.add(depth_metrics(p, g, protocol))
        finally:
            self.method.train()
        return averager.means()

    def _log(self, message: str) -> None:
        if self.is_main:
            print(f'[{self.config.experiment}] {message}', file=sys.stderr, flush=True)


def _progress_losses(logs: Mapping[str, float], most: int = 4) -> dict[str, str]:
    """The first few logged scalars, losses first, short enough for a progress bar."""
    keys = sorted(logs, key=lambda k: 'loss' not in k)[:most]
    return {k: f'{logs[k]:.4g}' for k in keys}


def init_weights(method: DepthMethod, path: Path) -> None:
    """Load network weights (not optimizers) from a training checkpoint (.pt) or from the
    torch program of an exported model (.pt2, whose parameters are named
    '<export module attribute>.<network key>', float32 or float16 weights)."""
    if not path.is_file():
        raise ConfigError(f"trainer.init_weights: '{path}' does not exist")
    if path.suffix == '.pt2':
        weights = plain_state_dict(torch.export.load(str(path)).state_dict)
        for name, network in method.networks().items():
            own = network.state_dict()
            for prefix in {k.split('.', 1)[0] + '.' for k in weights}:
                found = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
                if set(own) <= set(found):
                    network.load_state_dict({k: found[k] for k in own})
                    break
            else:
                raise ConfigError(f"trainer.init_weights: '{path}' has no weights for network "
                                  f'{name} of {method.name}')
        return
    checkpoint = load_checkpoint(path)
    if checkpoint['method'] != method.name:
        raise ConfigError(f"trainer.init_weights: '{path}' is a {checkpoint['method']} "
                          f'checkpoint, not {method.name}')
    method.load_state_dict(checkpoint['state'], with_optimizers=False)


def run_training(config: ExperimentConfig, *, dataset: Sequence | None = None,
                 val_dataset: Sequence | None = None, resume: str | Path = 'auto',
                 until_step: int | None = None, progress: bool = True) -> TrainResult:
    """Train ``config`` (datasets from the config unless given). Under torchrun (RANK /
    WORLD_SIZE set) the process joins the job: gloo on CPU, nccl on CUDA."""
    env = DistributedEnv.from_environ()
    device = resolve_device(config.trainer.device, env.local_rank)
    owns_group = False
    if env.world_size > 1 and not torch.distributed.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo',
                                             rank=env.rank, world_size=env.world_size)
        owns_group = True
    if env.rank == 0:
        if env.world_size > 1:
            where = (f'DDP, backend {torch.distributed.get_backend()}, world size '
                     f'{env.world_size} ({config.trainer.batch_size} samples per process)')
        else:
            where = 'one process (no DDP)'
        print(f'[{config.experiment}] training on {device.type}, {where}', file=sys.stderr,
              flush=True)
    try:
        t = config.trainer
        if t.threads > 0:
            torch.set_num_threads(t.threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        context = TrainContext(device, env.world_size, env.rank)
        seed_everything(t.seed)            # identical initial weights on every process
        method = get_method_class(config.method.name)(config.method_config(), context)
        seed_everything(t.seed + 1_000 * env.rank)   # own dropout / augmentation stream
        if dataset is None:
            dataset = open_dataset(config, config.data.train_split, augment=True)
        if val_dataset is None and config.data.val_split and env.rank == 0:
            val_dataset = open_dataset(config, config.data.val_split, config.data.val_options)
            if len(val_dataset) == 0:      # e.g. a bag with holdout 0
                val_dataset = None
        trainer = Trainer(config, method, dataset, val_dataset, context, progress)
        if not trainer.resume(resume) and t.init_weights:
            init_weights(method, Path(t.init_weights))
            trainer._log(f'network weights from {t.init_weights}')
        return trainer.run(until_step)
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m training.train', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True, help='experiment YAML (training/configs/)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides with dotted keys, e.g. trainer.batch_size=8 '
                             '(anywhere on the command line)')
    parser.add_argument('--device', choices=DEVICES, help='overrides trainer.device')
    parser.add_argument('--run-dir', help='overrides trainer.run_dir')
    parser.add_argument('--resume', default='auto',
                        help="'auto' (default): continue from <run_dir>/checkpoints/last.pt "
                             "if it exists; 'never': start over; or a checkpoint path")
    parser.add_argument('--until-step', type=int,
                        help='stop after this many iterations in total (resumable later)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--bag', action='append', metavar='PATH',
                        help='train from this recording (repeatable; sets data.source=rosbag '
                             'and data.bags; python -m training.inspect_bag BAG)')
    parser.add_argument('--topic', action='append', metavar='ROLE:=TOPIC',
                        help='the topic of a role (repeatable), e.g. image:=/camera/image; '
                        'ROLE:= (empty) drops a role the config names')
    return parser.parse_intermixed_args(argv)


def bag_overrides(bags: Sequence[str] | None, topics: Sequence[str] | None) -> list[str]:
    """--bag / --topic as config overrides (values in JSON, which YAML reads)."""
    import json
    out = []
    if bags:
        out += ['data.source=rosbag', f'data.bags={json.dumps(list(bags))}']
    for item in topics or ():
        role, sep, topic = item.partition(':=')
        if not sep or not role:
            raise ConfigError(f"--topic '{item}' is not of the form ROLE:=TOPIC")
        out.append(f'data.topics.{role}={json.dumps(topic)}')
    return out


def resume_command(argv: Sequence[str], world_size: int) -> str:
    """The command line that continues this run from its last.pt (same arguments, without
    --resume, whose default 'auto' picks the checkpoint up)."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == '--resume':
            skip = True
        elif not arg.startswith('--resume='):
            args.append(arg)
    launcher = (['torchrun', f'--nproc_per_node={world_size}'] if world_size > 1
                else ['python'])
    return shlex.join([*launcher, '-m', 'training.train', *args])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f'trainer.device={args.device}')
    if args.run_dir:
        overrides.append(f'trainer.run_dir={args.run_dir}')
    try:
        overrides += bag_overrides(args.bag, args.topic)
        config = load_config(args.config, overrides)
        result = run_training(config, resume=args.resume, until_step=args.until_step,
                              progress=not args.no_progress)
    except (ConfigError, CheckpointError, FloatingPointError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:
        env = DistributedEnv.from_environ()
        if env.rank == 0:
            print(f'{exc}\nresume with: {resume_command(argv, env.world_size)}',
                  file=sys.stderr)
        return 130
    except KeyboardInterrupt:       # a second Ctrl-C, or one outside the training loop
        print('interrupted; nothing saved since the last checkpoint', file=sys.stderr)
        return 130
    if DistributedEnv.from_environ().rank == 0:
        print(f'step {result.step}; checkpoint {result.checkpoint}'
              + (f'; model {result.onnx}' if result.onnx else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
