import pytest

from depth_nodes.core.model_spec import (METADATA_KEY, ModelSpec, ModelSpecError,
                                         spec_from_metadata)


def test_json_round_trip_keeps_every_field():
    spec = ModelSpec(method='eigen', input_height=228, input_width=304, output_kind='log_depth',
                     mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2), extras={'coarse': [55, 74]})
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_overrides_coerce_ros_parameter_types():
    spec = ModelSpec(input_height=10, input_width=10)
    out = spec.with_overrides({'output_kind': 'inverse_depth', 'input_width': 256,
                               'mean': [0.1, 0.2, 0.3], 'near_is_bright': 'false',
                               'input_names': 'rgb'})
    assert out.output_kind == 'inverse_depth' and out.input_width == 256
    assert out.mean == (0.1, 0.2, 0.3) and out.near_is_bright is False
    assert out.input_names == ('rgb',)


@pytest.mark.parametrize('bad', [
    {'output_kind': 'depthish'}, {'input_kind': 'thermal'}, {'std': (1.0, 0.0, 1.0)},
    {'min_depth': 5.0, 'max_depth': 1.0}, {'unknown_field': 1}, {'mean': (0.1,)},
    {'resize_mode': 'crop'},
    # A padded input would change what disparity (a fraction of the input width) means.
    {'resize_mode': 'letterbox', 'output_kind': 'disparity_fraction'},
    {'resize_mode': 'letterbox', 'input_kind': 'stereo'},
])
def test_invalid_specs_name_the_problem(bad):
    with pytest.raises(ModelSpecError):
        ModelSpec().with_overrides(bad)


def test_newer_schema_is_refused():
    with pytest.raises(ModelSpecError, match='newer'):
        ModelSpec.from_mapping({'schema': 99})


def test_spec_inferred_from_graph_without_metadata():
    spec, embedded = spec_from_metadata({}, {'input.1': (1, 3, 192, 256)}, ['out'])
    assert not embedded
    assert (spec.input_names, spec.input_height, spec.input_width) == (('input.1',), 192, 256)
    assert spec.output_name == 'out'
    spec2, embedded2 = spec_from_metadata({METADATA_KEY: spec.to_json()}, {}, [])
    assert embedded2 and spec2 == spec
