"""Every RViz config names only topics the nodes really publish or subscribe, with the frame
the sample bags and camera drivers use.

The topics come from the code, not a copied list: the string topics of every
create_publisher / create_subscription / create_input_subscription call in the node's module
and in depth_node.py (the shared outputs), resolved in the root namespace as the launch files
start the nodes, plus the method's inputs (Method.inputs).
"""
import ast
import sys
from pathlib import Path

import pytest
import yaml

from depth_nodes.methods import METHODS

REPO = Path(__file__).resolve().parents[2]
NODES = REPO / 'depth_nodes' / 'nodes'
RVIZ_FILES = sorted((REPO / 'config').glob('*.rviz'))
TOPIC_CALLS = ('create_publisher', 'create_subscription', 'create_input_subscription')
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import FRAME_ID  # noqa: E402


def _string_values(node: ast.AST, loops: dict[str, list[str]]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return loops.get(node.id, [])
    return []


def _loop_constants(tree: ast.AST) -> dict[str, list[str]]:
    """`for t in ('a', 'b')` / `for i, t in enumerate(('a', 'b'))`: t -> ['a', 'b']."""
    loops = {}
    for loop in (n for n in ast.walk(tree) if isinstance(n, ast.For)):
        target, iterable = loop.target, loop.iter
        if isinstance(iterable, ast.Call) and getattr(iterable.func, 'id', '') == 'enumerate':
            iterable = iterable.args[0]
            target = target.elts[1] if isinstance(target, ast.Tuple) else target
        if isinstance(target, ast.Name) and isinstance(iterable, (ast.Tuple, ast.List)):
            loops[target.id] = [e.value for e in iterable.elts
                                if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return loops


def module_topics(path: Path) -> set[str]:
    """Topics (root namespace) of every publisher/subscription a module creates."""
    tree = ast.parse(path.read_text())
    loops = _loop_constants(tree)
    topics = set()
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = getattr(call.func, 'attr', getattr(call.func, 'id', ''))
        if name not in TOPIC_CALLS:
            continue
        args = [k.value for k in call.keywords if k.arg == 'topic'] or call.args[1:2]
        for arg in args:
            topics.update(t if t.startswith('/') else '/' + t
                          for t in _string_values(arg, loops))
    return topics


def method_topics(method) -> set[str]:
    return module_topics(NODES / 'depth_node.py') | module_topics(
        NODES / f'{method.executable}.py') | {'/' + t for t in method.inputs}


def rviz_topics(config) -> set[str]:
    """Every topic a display subscribes: `Topic: {Value: ...}` and `... Topic: /name`."""
    found = set()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if 'Topic' in str(key):
                    if isinstance(value, dict) and isinstance(value.get('Value'), str):
                        found.add(value['Value'])
                    elif isinstance(value, str):
                        found.add(value)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return {t for t in found if t}


def test_topics_are_found_in_the_node_code():
    """The derivation itself: the mono node's known inputs and the shared outputs."""
    topics = method_topics(METHODS['eigen'])
    assert {'/image', '/camera_info', '/depth/image', '/depth/camera_info', '/depth/colored',
            '/depth/points', '/diagnostics'} <= topics


def test_every_method_has_its_rviz_config():
    for method in METHODS.values():
        assert (REPO / 'config' / method.rviz).is_file(), (method.name, method.rviz)


@pytest.mark.parametrize('name', sorted(METHODS))
def test_each_methods_rviz_config_names_only_topics_its_node_uses(name):
    method = METHODS[name]
    named = rviz_topics(yaml.safe_load((REPO / 'config' / method.rviz).read_text()))
    allowed = method_topics(method)
    assert named <= allowed, f'{method.rviz} names topics {method.executable} does not ' \
        f'have: {sorted(named - allowed)}'
    # The outputs users come for are on screen, with at least one of the node's inputs.
    assert {'/depth/image', '/depth/colored', '/depth/points'} <= named
    assert named & {'/' + t for t in method.inputs}


@pytest.mark.parametrize('path', RVIZ_FILES, ids=lambda p: p.name)
def test_every_rviz_config_belongs_to_a_method(path):
    assert any(m.rviz == path.name for m in METHODS.values()), \
        f'{path.name} is opened by no method (Method.rviz)'


@pytest.mark.parametrize('path', RVIZ_FILES, ids=lambda p: p.name)
def test_rviz_config_uses_the_camera_optical_frame(path):
    options = yaml.safe_load(path.read_text())['Visualization Manager']['Global Options']
    assert options['Fixed Frame'] == FRAME_ID
