"""The model spec: everything the runtime needs to know about a depth network.

It travels inside the ONNX file as one metadata entry, key ``depth_nodes.model_spec``, whose
value is the JSON of :class:`ModelSpec` (schema documented in docs/nodes.md, "Model spec").
A model without that entry (a user's own export) gets a spec inferred from its graph plus
defaults, and node parameters ``spec.<field>`` override any field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

METADATA_KEY = 'depth_nodes.model_spec'
SCHEMA_VERSION = 2                 # 2: resize_mode

INPUT_KINDS = ('rgb', 'gray', 'nir', 'semidense', 'stereo')
COLOR_ORDERS = ('rgb', 'bgr')
OUTPUT_KINDS = (
    'metric_depth',        # metres
    'log_depth',           # natural log of metres (Eigen et al.)
    'inverse_depth',       # 1 / metres
    'normalized_depth',    # output_range mapped linearly onto [min_depth, max_depth]
    'disparity_fraction',  # disparity as a fraction of image width (Godard / Shen et al.)
    'translated_image',    # not depth: an image in output_range (NIR -> RGB translation, CTN)
    # Inverse depth up to an unknown scale and shift (MiDaS / Depth-Anything-style exports):
    # metric only after a per-frame fit to sparse depth (mono_depth_node scale_from).
    'relative_inverse_depth',
)
# How a camera image becomes the network's input size: 'stretch' resizes it to the input size
# (a 3:2 image fed to a square model is squeezed); 'letterbox' keeps its aspect ratio, fills
# the rest of the input by repeating the image's edge rows or columns, and crops the output
# back to the image (core/preprocess.letterbox_box).
RESIZE_MODES = ('stretch', 'letterbox')
LETTERBOX_INPUT_KINDS = ('rgb', 'gray', 'nir')
# Disparity is a fraction of the input width, and a translated image is not depth: a padded
# input would change what their output means.
LETTERBOX_EXCLUDED_OUTPUTS = ('disparity_fraction', 'translated_image')


class ModelSpecError(ValueError):
    """A spec field with an invalid value; the message names the field."""


@dataclass(frozen=True)
class ModelSpec:
    method: str = 'custom'
    input_kind: str = 'rgb'
    input_names: tuple[str, ...] = ('image',)
    input_height: int = 0
    input_width: int = 0
    input_channels: int = 3
    color_order: str = 'rgb'
    resize_mode: str = 'stretch'
    # Normalisation after scaling pixels to [0, 1]: x = (pixel / max - mean) / std.
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    output_name: str = 'depth'
    output_kind: str = 'metric_depth'
    # Affine applied to the raw output before its kind is interpreted (e.g. MiDaS' relative
    # inverse depth): value = output_scale * raw + output_shift.
    output_scale: float = 1.0
    output_shift: float = 0.0
    # normalized_depth only: the raw value range, and whether the largest value means nearest
    # (the pix2pix seed's "brighter = closer" convention).
    output_range: tuple[float, float] = (-1.0, 1.0)
    near_is_bright: bool = True
    # Depth outside [min_depth, max_depth] (metres) is published as NaN.
    min_depth: float = 0.1
    max_depth: float = 100.0
    # disparity_fraction only: stereo baseline in metres of the rig the model was trained on,
    # and its horizontal focal length as a fraction of image width (used when no camera_info).
    baseline: float = 0.0
    focal_fraction: float = 0.0
    # Method-specific settings (e.g. semidense depth normalisation); JSON-serialisable.
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ModelSpecError(f"input_kind '{self.input_kind}' not in {INPUT_KINDS}")
        if self.color_order not in COLOR_ORDERS:
            raise ModelSpecError(f"color_order '{self.color_order}' not in {COLOR_ORDERS}")
        if self.output_kind not in OUTPUT_KINDS:
            raise ModelSpecError(f"output_kind '{self.output_kind}' not in {OUTPUT_KINDS}")
        if self.resize_mode not in RESIZE_MODES:
            raise ModelSpecError(f"resize_mode '{self.resize_mode}' not in {RESIZE_MODES}")
        if self.resize_mode == 'letterbox' and (
                self.input_kind not in LETTERBOX_INPUT_KINDS
                or self.output_kind in LETTERBOX_EXCLUDED_OUTPUTS):
            raise ModelSpecError(
                f"resize_mode 'letterbox' needs input_kind in {LETTERBOX_INPUT_KINDS} and an "
                f'output_kind other than {LETTERBOX_EXCLUDED_OUTPUTS}; this spec has '
                f"'{self.input_kind}' -> '{self.output_kind}'")
        if self.input_height < 0 or self.input_width < 0:
            raise ModelSpecError('input_height and input_width must be >= 0')
        if len(self.mean) != len(self.std):
            raise ModelSpecError('mean and std must have the same length')
        if any(s == 0 for s in self.std):
            raise ModelSpecError('std must not contain 0')
        if not (0 <= self.min_depth < self.max_depth) or not math.isfinite(self.max_depth):
            raise ModelSpecError(
                f'need 0 <= min_depth < max_depth < inf, got [{self.min_depth}, {self.max_depth}]')
        if self.output_range[0] == self.output_range[1]:
            raise ModelSpecError('output_range must not be empty')
        if not self.input_names:
            raise ModelSpecError('input_names must name at least one tensor')

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the network input."""
        return self.input_height, self.input_width

    def to_json(self) -> str:
        payload = dataclasses.asdict(self)
        payload['extras'] = dict(self.extras)
        payload['schema'] = SCHEMA_VERSION
        return json.dumps(payload, sort_keys=True)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> 'ModelSpec':
        values = dict(values)
        schema = values.pop('schema', SCHEMA_VERSION)
        if schema > SCHEMA_VERSION:
            raise ModelSpecError(f'model spec schema {schema} is newer than this package '
                                 f'({SCHEMA_VERSION}); update depth_nodes')
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ModelSpecError(f'unknown model spec fields: {sorted(unknown)}')
        return cls(**{k: _coerce(known[k], v) for k, v in values.items()})

    @classmethod
    def from_json(cls, text: str) -> 'ModelSpec':
        return cls.from_mapping(json.loads(text))

    def with_overrides(self, overrides: Mapping[str, Any]) -> 'ModelSpec':
        """A copy with fields replaced (values coerced to the field's type)."""
        if not overrides:
            return self
        merged = dataclasses.asdict(self)
        merged.update(overrides)
        return ModelSpec.from_mapping(merged)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(ModelSpec))


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Bring a JSON or ROS-parameter value to the declared type of a spec field."""
    typ = f.type if isinstance(f.type, str) else str(f.type)
    try:
        if typ.startswith('tuple[str'):
            return (value,) if isinstance(value, str) else tuple(str(v) for v in value)
        if typ.startswith('tuple[float'):
            return tuple(float(v) for v in value)
        if typ == 'int':
            return int(value)
        if typ == 'float':
            return float(value)
        if typ == 'bool':
            if isinstance(value, str):
                return value.lower() in ('1', 'true', 'yes')
            return bool(value)
        if typ == 'str':
            return str(value)
        if typ.startswith('Mapping'):
            return dict(json.loads(value) if isinstance(value, str) else value)
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(f"spec field '{f.name}': cannot use {value!r} ({exc})") from None
    return value


def spec_from_metadata(metadata: Mapping[str, str], input_shapes: Mapping[str, tuple],
                       output_names: list[str]) -> tuple[ModelSpec, bool]:
    """Spec from an ONNX model's metadata map; inferred from the graph when it has none.

    Returns (spec, embedded): embedded is False when the spec was inferred, so the caller
    can tell the user which defaults were assumed.
    """
    if METADATA_KEY in metadata:
        return ModelSpec.from_json(metadata[METADATA_KEY]), True
    names = tuple(input_shapes)
    first = input_shapes[names[0]]
    height, width, channels = 0, 0, 3
    if len(first) == 4 and all(isinstance(d, int) and d > 0 for d in first[1:]):
        channels, height, width = int(first[1]), int(first[2]), int(first[3])
    kind = 'rgb' if channels == 3 else 'gray'
    mean = (0.0,) * channels
    return ModelSpec(input_kind=kind, input_names=names, input_height=height,
                     input_width=width, input_channels=channels, mean=mean,
                     std=(1.0,) * channels, output_name=output_names[0]), False
