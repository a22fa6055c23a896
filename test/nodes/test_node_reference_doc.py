"""docs/nodes.md is the node reference users read: every parameter each node declares is in
its tables, with the default, range, choices and read-only flag the node declares it with,
and every model spec field is listed with its default. Checked against running nodes."""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import rclpy
import yaml

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.nodes.dof_node import DofNode
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.nodes.nir_depth_node import NirDepthNode
from depth_nodes.nodes.semidense_depth_node import SemiDenseDepthNode
from depth_nodes.nodes.stereo_depth_node import StereoDepthNode

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'nodes.md'
COMMON_SECTION = 'What every depth node shares'
NODES = {'mono_depth_node': MonoDepthNode, 'nir_depth_node': NirDepthNode,
         'semidense_depth_node': SemiDenseDepthNode, 'stereo_depth_node': StereoDepthNode,
         'dof_node': DofNode}
# Declared by rclpy itself or by the package for every node, documented elsewhere.
NOT_NODE_PARAMETERS = re.compile(r'^(use_sim_time|start_type_description_service|'
                                 r'qos_overrides\..*|spec\..*)$')
NUMBER = r'-?\d+(?:\.\d+)?(?:e-?\d+)?'


def sections() -> dict[str, str]:
    """'## ' heading -> its text."""
    parts = re.split(r'^## ', DOC.read_text(), flags=re.M)[1:]
    return {part.split('\n', 1)[0].strip(): part for part in parts}


def tables(text: str, first_header: str) -> list[list[str]]:
    """Rows (lists of cells) of the tables in ``text`` whose first header cell is given."""
    rows, current = [], None
    for line in text.splitlines():
        if not line.startswith('|'):
            current = None
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if current is None:
            current = cells[0] == first_header
        elif current and not set(cells[0]) <= set('-'):
            rows.append(cells)
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r'`([^`]*)`', cell)


def documented_parameters(node_name: str) -> dict[str, tuple[str | None, list[str]]]:
    """Parameter -> (its documented default or None, its row) for one node."""
    text = sections()
    rows = tables(text[node_name], 'parameter')
    if node_name != 'dof_node':
        rows += tables(text[COMMON_SECTION], 'parameter')
    found = {}
    for row in rows:
        names = [n for n in ticked(row[0]) if '<' not in n]
        defaults = ticked(row[2].split('(')[0])
        for i, name in enumerate(names):
            default = defaults[i] if len(defaults) == len(names) else None
            found[name] = (default, row)
    return found


def same_value(documented: str, declared) -> bool:
    if documented == "''":
        documented = ''
    value = yaml.safe_load(documented) if documented else ''
    if isinstance(declared, (list, tuple)):
        return len(value) == len(declared) and all(
            same_value(str(v), d) for v, d in zip(value, declared))
    if isinstance(declared, bool) or isinstance(declared, str):
        return value == declared
    if isinstance(declared, dict):
        return value == dict(declared)
    return math.isclose(float(value), float(declared))


@pytest.fixture(scope='module')
def declared():
    """Node name -> {parameter: (value, descriptor)} of each node, built with its defaults."""
    context = rclpy.Context()
    rclpy.init(context=context)
    result = {}
    try:
        for name, node_class in NODES.items():
            node = node_class(context=context)
            try:
                names = sorted(n for n in node.get_parameters_by_prefix('')
                               if not NOT_NODE_PARAMETERS.match(n))
                descriptors = node.describe_parameters(names)
                result[name] = {n: (node.get_parameter(n).value, d)
                                for n, d in zip(names, descriptors)}
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    return result


@pytest.mark.parametrize('node_name', NODES)
def test_every_declared_parameter_is_documented_with_its_default(declared, node_name):
    documented = documented_parameters(node_name)
    parameters = declared[node_name]
    assert set(parameters) - set(documented) == set(), 'declared but not in docs/nodes.md'
    assert set(documented) - set(parameters) == set(), 'in docs/nodes.md but not declared'
    for name, (value, _) in parameters.items():
        default, row = documented[name]
        if name == 'model':   # per node: "Default `model`: `...`" in the node's section
            match = re.search(r'Default `model`:\s+`([^`]*)`', sections()[node_name])
            default = match.group(1) if match else "''"
        assert default is not None, f'{node_name} {name}: no default in {row}'
        assert same_value(default, value), f'{node_name} {name}: doc {default}, node {value!r}'


@pytest.mark.parametrize('node_name', NODES)
def test_documented_ranges_choices_and_read_only_match_the_descriptors(declared, node_name):
    documented = documented_parameters(node_name)
    for name, (_, descriptor) in declared[node_name].items():
        row = documented[name][1]
        range_cell, runtime_cell = row[3], row[4]
        ranges = list(descriptor.floating_point_range) + list(descriptor.integer_range)
        for r in ranges:
            spans = [(float(a), float(b)) for a, b in
                     re.findall(rf'({NUMBER})-({NUMBER})', range_cell)]
            assert any(math.isclose(a, r.from_value) and math.isclose(b, r.to_value)
                       for a, b in spans), f'{node_name} {name}: range {r} not in {range_cell}'
        choices = re.search(r'\(one of: ([^)]*)\)', descriptor.description)
        if choices:
            assert set(ticked(range_cell)) == set(choices.group(1).split(', ')), \
                f'{node_name} {name}: choices {choices.group(1)} vs {range_cell}'
        assert runtime_cell.startswith('no') == descriptor.read_only, \
            f'{node_name} {name}: read_only {descriptor.read_only} vs "{runtime_cell}"'


def test_every_model_spec_field_is_documented_with_its_default():
    rows = tables(sections()['Model spec'], 'field')
    documented = {}
    for row in rows:
        names, defaults = ticked(row[0]), ticked(row[1])
        assert len(names) == len(defaults), row
        documented.update(zip(names, defaults))
    spec = ModelSpec()
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(ModelSpec)}
    assert set(documented) == set(fields)
    for name, value in fields.items():
        assert same_value(documented[name], value), f'{name}: doc {documented[name]}, {value!r}'
