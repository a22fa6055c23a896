"""The launch logic without `launch`: method table, params files, remaps, launch-argument docs."""
import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from depth_nodes.launch_actions import is_true
from depth_nodes.methods import METHODS, REMAP_ARGUMENTS, get_method, launch_plan

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / 'launch').glob('*.launch.py'))
# Where the launch files' actions are made (DeclareLaunchArgument among them).
LAUNCH_ACTIONS = REPO / 'depth_nodes' / 'launch_actions.py'

# The launch arguments users type (name, default; None = required), in declaration order.
REMAPS = list(REMAP_ARGUMENTS.items())      # default: the node's own input name
LAUNCH_ARGUMENTS = {
    'depth.launch.py': [('method', 'eigen'), ('model', ''), ('backend', ''), ('namespace', ''),
                        ('use_sim_time', 'false'), ('rviz', 'false'), ('dof', 'false'),
                        ('image_transport', '')] + REMAPS,
    'bag_replay.launch.py': [('bag', None), ('method', 'eigen'), ('rate', '1.0'),
                             ('loop', 'false'), ('player', 'auto'), ('rviz', 'false'),
                             ('dof', 'false'), ('record', ''), ('recorder', 'auto'),
                             ('shutdown_at_end', 'true'), ('model', ''), ('backend', ''),
                             ('namespace', ''), ('image_transport', '')] + REMAPS,
    'multi_camera.launch.py': [('cameras', 'front rear'), ('method', 'eigen'), ('model', ''),
                               ('backend', ''), ('use_sim_time', 'false')],
}


def load_launch_file(path: Path):
    """A launch file as a module: it imports `launch` only inside depth_nodes.launch_actions'
    functions, so its argument table reads without a ROS 2 install."""
    spec = importlib.util.spec_from_file_location(path.name.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('path', sorted((REPO / 'config').glob('*.yaml')),
                         ids=lambda p: p.name)
def test_params_files_apply_to_their_node_in_any_namespace(path):
    """The only root key is `/**` (every node, any namespace, as nav2 and image_pipeline
    configs do): a bare node-name key matches only a node in the root namespace, and the
    node in namespace:=robot1 then silently ran its defaults (issue 16)."""
    params = yaml.safe_load(path.read_text())
    assert list(params) == ['/**'], path.name
    assert isinstance(params['/**']['ros__parameters'], dict)


def test_image_transport_argument_sets_the_node_parameter(tmp_path):
    (node,) = launch_plan('eigen', image_transport='compressed', share=tmp_path, environ={})
    assert node.parameters[1] == {'use_sim_time': False, 'image_transport': 'compressed'}
    (node,) = launch_plan('eigen', share=tmp_path, environ={})
    assert 'image_transport' not in node.parameters[1]       # empty: the params file's


def test_every_method_has_a_params_file_for_its_node():
    for method in METHODS.values():
        assert (REPO / 'config' / method.params_file).is_file(), method.name


def test_plan_for_eigen_with_remaps_and_overrides(tmp_path):
    plans = launch_plan('eigen', model='/models/m.onnx', backend='onnxruntime',
                        use_sim_time=True, remaps={'image': '/cam/color', 'camera_info': ''},
                        rviz=True, share=tmp_path, environ={})
    node, rviz = plans
    assert (node.package, node.executable) == ('depth_nodes', 'mono_depth_node')
    assert node.parameters == [str(tmp_path / 'config' / 'eigen.yaml'),
                               {'use_sim_time': True, 'model': '/models/m.onnx',
                                'backend': 'onnxruntime'}]
    assert node.remappings == [('image', '/cam/color')]       # empty remap = keep default
    assert rviz.arguments == ['-d', str(tmp_path / 'config' / 'depth.rviz')]
    assert node.env == {'FASTDDS_DEFAULT_PROFILES_FILE':
                        str(tmp_path / 'config' / 'fastdds_large_data.xml')}


def test_a_users_fast_dds_profile_is_kept(tmp_path):
    (node,) = launch_plan('eigen', share=tmp_path,
                          environ={'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/mine.xml'})
    assert node.env == {}


def test_plan_without_overrides_keeps_params_file_values(tmp_path):
    (node,) = launch_plan('eigen', share=tmp_path)
    assert node.parameters[1] == {'use_sim_time': False}


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValueError, match='eigen'):
        get_method('midas')


def test_remap_arguments_name_real_node_inputs():
    inputs = {topic for m in METHODS.values() for topic in m.inputs}
    assert set(REMAP_ARGUMENTS.values()) <= inputs


@pytest.mark.parametrize('path', LAUNCH_FILES + [LAUNCH_ACTIONS], ids=lambda p: p.name)
def test_launch_files_compile_and_describe_every_argument(path):
    tree = ast.parse(path.read_text())
    compile(tree, str(path), 'exec')
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = getattr(call.func, 'id', getattr(call.func, 'attr', ''))
        if name == 'DeclareLaunchArgument':
            assert any(k.arg == 'description' for k in call.keywords), ast.dump(call)[:200]


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_arguments_keep_their_names_defaults_and_descriptions(path):
    arguments = load_launch_file(path).ARGUMENTS
    assert [(name, default) for name, default, _ in arguments] == LAUNCH_ARGUMENTS[path.name]
    described = dict((name, text) for name, _, text in arguments)
    assert all(text.strip() for text in described.values())
    assert all(f'{m.name} ({m.summary})' in described['method'] for m in METHODS.values())
    if 'left_image' in described:
        source = 'bag topic' if path.name == 'bag_replay.launch.py' else 'topic'
        assert described['left_image'] == \
            f"{source} remapped to the node's 'left/image_rect' input"


def test_boolean_launch_arguments():
    assert [is_true(t) for t in ('true', ' True', 'YES', 'on', '1')] == [True] * 5
    assert [is_true(t) for t in ('false', '0', 'no', 'off', '', 'truthy')] == [False] * 6


def test_pix2pix_runs_mono_depth_node_with_its_params_file(tmp_path):
    (node,) = launch_plan('pix2pix', share=tmp_path)
    assert (node.executable, node.parameters[0]) == ('mono_depth_node',
                                                     str(tmp_path / 'config' / 'pix2pix.yaml'))


def test_dof_adds_dof_node_on_the_methods_image_and_depth(tmp_path):
    depth, dof = launch_plan('pix2pix', dof=True, use_sim_time=True, share=tmp_path, environ={},
                             remaps={'image': '/cam/color', 'camera_info': '/cam/info'})
    assert (dof.package, dof.executable, dof.name) == ('depth_nodes', 'dof_node', 'dof_node')
    assert dof.parameters == [str(tmp_path / 'config' / 'dof.yaml'), {'use_sim_time': True}]
    # The camera image as remapped for the depth node; depth/image is the depth node's own
    # output (both nodes are node-relative in the same namespace).
    assert dof.remappings == [('image', '/cam/color')]
    assert ('image', '/cam/color') in depth.remappings and dof.env == depth.env
    assert [p.executable for p in launch_plan('eigen', dof=True, share=tmp_path)] == \
        ['mono_depth_node', 'dof_node']
    params = yaml.safe_load((REPO / 'config' / 'dof.yaml').read_text())
    assert params['/**']['ros__parameters']['focus_distance'] > 0


def test_dof_refuses_methods_without_rgb_images(tmp_path):
    with pytest.raises(ValueError, match="dof:=true needs an RGB method; 'nir' takes nir"):
        launch_plan('nir', dof=True, share=tmp_path)
