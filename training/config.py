"""Experiment configuration: one YAML per experiment, loaded into frozen dataclasses.

Layout of training/configs/<experiment>.yaml::

    experiment: eigen_nyu            # run name (default run dir: runs/<experiment>)
    description: ...
    method:
      name: eigen                    # training/models METHODS key
      options: {...}                 # the method's own config dataclass (e.g. EigenConfig)
    data: {...}                      # DataConfig
    trainer: {...}                   # TrainerConfig

Command-line overrides are ``dotted.key=value`` with the value parsed as YAML
(``trainer.batch_size=8``, ``method.options.width_scale=0.25``,
``trainer.stage_steps.coarse=100``). Unknown keys are errors that name the key, so a typo
never trains silently with a default.
"""
from __future__ import annotations

import collections.abc
import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from training.models import get_method_class
from training.models.base import build_dataclass

DEVICES = ('auto', 'cpu', 'cuda')


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file or key."""


@dataclass(frozen=True)
class MethodConfig:
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


DATA_SOURCES = ('dataset', 'rosbag')


@dataclass(frozen=True)
class DataConfig:
    # 'dataset': a training.datasets loader (dataset, root, options); 'rosbag': recordings
    # (bags, topics: {role: topic}, holdout; training/datasets/rosbag.py)
    source: str = 'dataset'
    bags: tuple[str, ...] = ()                   # rosbag2 directories / ROS 1 .bag files
    topics: Mapping[str, str] = field(default_factory=dict)    # role -> topic
    holdout: float = 0.1         # the last part of each bag in time: the val / test split
    sync_tolerance: float = 0.02                 # s: largest stamp difference of a pair
    dataset: str = 'synthetic'                   # training.datasets registry name
    root: str | None = None                      # dataset directory (None: the default)
    options: Mapping[str, Any] = field(default_factory=dict)     # dataset keyword arguments
    train_split: str = 'train'
    val_split: str = 'val'                       # '' = no validation during training
    val_options: Mapping[str, Any] | None = None  # dataset options for val (None: options)
    num_workers: int = 0
    cache: bool = False      # keep samples in memory after the first read (static datasets)
    # Training-split augmentation: fields of training.datasets.augment.AugmentConfig
    # (flip_probability, max_rotation_degrees, crop, brightness, ...); None = none.
    augment: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"source '{self.source}' not in {DATA_SOURCES}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f'holdout must be in [0, 1), got {self.holdout}')
        if self.sync_tolerance < 0:
            raise ValueError(f'sync_tolerance must be >= 0 s, got {self.sync_tolerance}')


@dataclass(frozen=True)
class TrainerConfig:
    batch_size: int = 32                         # per process
    # Iterations per stage, in the method's stage order (missing stages are skipped).
    stage_steps: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0
    device: str = 'auto'                         # auto | cpu | cuda
    threads: int = 0                             # torch CPU threads (0 = library default)
    log_every: int = 50                          # TensorBoard scalars, iterations
    checkpoint_every: int = 1000                 # iterations (and at each stage's end)
    val_every: int = 0                           # iterations; 0 = never
    val_batches: int = 8
    run_dir: str = ''                            # '' = runs/<experiment>
    export_onnx: bool = True                     # write <run_dir>/model.onnx at the end
    deterministic: bool = False                  # torch.use_deterministic_algorithms
    # Network weights to start from when not resuming (fine-tuning): a training checkpoint
    # (.pt) or an exported model's torch program (.pt2, e.g. models/dpn_synthetic.pt2).
    init_weights: str = ''

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device '{self.device}' not in {DEVICES}")
        if self.batch_size < 1:
            raise ValueError('batch_size must be >= 1')
        bad = {k: v for k, v in self.stage_steps.items() if not isinstance(v, int) or v < 0}
        if bad:
            raise ValueError(f'stage_steps must be integers >= 0, got {bad}')


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: str
    method: MethodConfig
    data: DataConfig = DataConfig()
    trainer: TrainerConfig = TrainerConfig()
    description: str = ''

    @property
    def run_dir(self) -> Path:
        return Path(self.trainer.run_dir or Path('runs') / self.experiment)

    def method_config(self):
        """The method's own frozen config dataclass built from ``method.options``."""
        cls = get_method_class(self.method.name)
        return checked_dataclass(cls.config_class, self.method.options, 'method.options')

    def to_dict(self) -> dict[str, Any]:
        """Plain, fully resolved dict (method defaults filled in): what runs save."""
        out = to_plain(dataclasses.asdict(self))
        out['method']['options'] = to_plain(dataclasses.asdict(self.method_config()))
        return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML, apply ``key=value`` overrides and validate everything."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config '{path}': {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        problem = getattr(exc, 'problem', None) or 'syntax error'
        raise ConfigError(f"config '{path}' is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config '{path}' must be a mapping at the top level")
    return config_from_dict(apply_overrides(raw, overrides), source=str(path))


def config_from_dict(raw: Mapping[str, Any], source: str = '<dict>') -> ExperimentConfig:
    raw = dict(raw)
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f'{source}: unknown top-level key(s) {sorted(unknown)}; '
                          f'known: {sorted(known)}')
    if 'experiment' not in raw or 'method' not in raw:
        raise ConfigError(f"{source}: 'experiment' and 'method' are required")
    try:
        config = ExperimentConfig(
            experiment=str(raw['experiment']),
            description=str(raw.get('description', '')),
            method=checked_dataclass(MethodConfig, _mapping(raw['method'], 'method'), 'method'),
            data=checked_dataclass(DataConfig, _mapping(raw.get('data', {}), 'data'), 'data'),
            trainer=checked_dataclass(TrainerConfig, _mapping(raw.get('trainer', {}),
                                                              'trainer'), 'trainer'))
        config.method_config()  # validates the method name and its options now
        if config.data.augment is not None:
            from training.datasets.augment import AugmentConfig
            checked_dataclass(AugmentConfig, config.data.augment, 'data.augment')
    except (ValueError, TypeError) as exc:
        raise ConfigError(f'{source}: {exc}') from None
    return config


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A deep copy of ``raw`` with each ``dotted.key=value`` set (value parsed as YAML)."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition('=')
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form dotted.key=value")
        try:
            value = yaml.safe_load(text) if text else ''
        except yaml.YAMLError as exc:
            problem = getattr(exc, 'problem', None) or 'invalid YAML'
            raise ConfigError(f"override {key}: value '{text}' is not valid YAML "
                              f'({problem})') from None
        node = out
        parts = key.split('.')
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


# Learning-rate options (lr, lr_g, lr_coarse_conv, ...): a negative one is a typo, caught
# here with its key rather than by the optimizer without it.
_LEARNING_RATE = re.compile(r'(^|_)lr(_|$)')


def checked_dataclass(cls: type, values: Mapping[str, Any], where: str):
    """build_dataclass after checking each value against its field's annotation (int,
    float, bool, str, optional, mapping, sequence) and that learning rates are >= 0, so a
    wrong value is a one-line error naming ``where.key``."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key)
        if hint is not None and not _matches(value, hint):
            raise ValueError(f'{where}.{key}: expected {_type_name(hint)}, got {value!r}')
        if (_LEARNING_RATE.search(key) and isinstance(value, (int, float))
                and not isinstance(value, bool) and value < 0):
            raise ValueError(f'{where}.{key}: a learning rate must be >= 0, got {value}')
    return build_dataclass(cls, values, where)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a dataclass annotation (unknown annotations: yes)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is not None and isinstance(origin, type):
        if issubclass(origin, Mapping):
            return isinstance(value, Mapping)
        if issubclass(origin, (tuple, list, collections.abc.Sequence)):
            return isinstance(value, (list, tuple))
    return True


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return ' or '.join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return 'null'
    origin = typing.get_origin(hint)
    if origin is not None and isinstance(origin, type):
        return 'a mapping' if issubclass(origin, Mapping) else 'a list'
    return getattr(hint, '__name__', str(hint))


def save_resolved_config(config: ExperimentConfig, run_dir: Path) -> Path:
    """Write the resolved config as <run_dir>/config.yaml (re-loadable with load_config)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / 'config.yaml'
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{where}' must be a mapping, got {type(value).__name__}")
    return dict(value)


def to_plain(value: Any) -> Any:
    """Tuples -> lists and mappings -> dicts, recursively (YAML/JSON/torch.load-safe)."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
