"""Every RViz config names only topics the nodes really publish or subscribe, with the frame
the sample bags and camera drivers use.

The topics come from the code, not a copied list: the inputs and outputs of the node's frame
path (depth_nodes.frames), which the node subscribes and publishes, resolved in the root
namespace as the launch files start the nodes, plus the method's inputs (Method.inputs).
"""
import sys
from pathlib import Path

import pytest
import yaml

from depth_nodes.methods import METHODS
from depth_nodes.process_bag import FRAME_PATHS

REPO = Path(__file__).resolve().parents[2]
RVIZ_FILES = sorted((REPO / 'config').glob('*.rviz'))
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import FRAME_ID  # noqa: E402


def method_topics(method) -> set[str]:
    """Topics (root namespace) of a method's node: its frame path's inputs and outputs,
    /diagnostics, and the method's inputs (Method.inputs)."""
    path = FRAME_PATHS[method.executable]
    names = {*path.outputs(), *path.streams, *path.latest_inputs,
             *path.message_inputs, *method.inputs}
    return {'/diagnostics'} | {t if t.startswith('/') else '/' + t for t in names}


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
