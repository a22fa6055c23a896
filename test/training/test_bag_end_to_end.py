"""The whole loop on the sample-bag tool's recordings: an RGB-D bag trains Eigen and a stereo
bag trains the DPN (a few hundred iterations of CPU-sized networks at small images), through
training.bag_loop (train, evaluate on the held-out end, export); then the nodes load the
exported models and publish depth equal to the ROS-free estimators' on a held-out frame."""
import functools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fixtures.ros_harness import overrides, ros_graph
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.model_spec import METADATA_KEY, ModelSpec
from training import bag_loop
from training.datasets.rosbag import RosbagDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
from make_sample_bags import sample_bag  # noqa: E402

FRAMES = 40                # 10 Hz: the last 10 % in time (frames 36-39) is held out
RGBD = {'image': '/camera/image', 'depth': '/camera/depth_ground_truth',
        'camera_info': '/camera/camera_info'}
STEREO = {'left': '/stereo/left/image_rect', 'right': '/stereo/right/image_rect',
          'left_camera_info': '/stereo/left/camera_info',
          'right_camera_info': '/stereo/right/camera_info'}


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    directory = tmp_path_factory.mktemp('sample_bags')
    return {'rgb': sample_bag('rgb', directory, frames=FRAMES, height=60, width=80),
            'stereo': sample_bag('stereo', directory, frames=FRAMES, height=64, width=128)}


def spec_of(onnx_path: Path) -> ModelSpec:
    import onnx
    model = onnx.load(str(onnx_path))
    return ModelSpec.from_json({p.key: p.value for p in model.metadata_props}[METADATA_KEY])


def wait_depth(probe, count=1, timeout=20.0):
    assert probe.wait_for(lambda: len(probe.messages('depth/image')) >= count, timeout), \
        f"expected {count} depth images, got {len(probe.messages('depth/image'))}"


def test_rgbd_bag_to_eigen_model_evaluated_exported_and_run_by_the_node(bags, tmp_path, capsys):
    run = tmp_path / 'eigen'
    rc = bag_loop.main(['eigen', '--bag', str(bags['rgb']), '--run-dir', str(run),
                        'method.options.width_scale=0.0625', 'method.options.fc_units=16',
                        'trainer.stage_steps.coarse=200', 'trainer.stage_steps.fine=100',
                        'trainer.batch_size=4', 'trainer.val_every=0', 'data.cache=true',
                        'trainer.threads=1', '--no-progress'])
    assert rc == 0
    out = capsys.readouterr().out
    model = run / 'model.onnx'
    assert (f'ros2 launch depth_nodes depth.launch.py method:=eigen model:={model.resolve()} '
            'image:=/camera/image camera_info:=/camera/camera_info') in out
    spec = spec_of(model)
    assert (spec.method, spec.output_kind, spec.input_size) == ('eigen', 'log_depth',
                                                                (114, 152))
    report = json.loads((run / 'metrics.json').read_text())
    assert report['metrics']['images'] == 4
    # Trained on the first 90 % of the bag, it beats the training split's per-pixel mean
    # depth on the held-out end.
    assert report['metrics']['abs_rel'] < report['baseline']['metrics']['abs_rel']

    from depth_nodes.nodes.mono_depth_node import MonoDepthNode
    from depth_nodes.runtime.estimator import MonoDepthEstimator
    from depth_nodes.runtime.model import open_model
    held_out = RosbagDataset('test', bags=[str(bags['rgb'])], topics=RGBD, method='eigen')
    sample = held_out[0]
    expected = MonoDepthEstimator(open_model(str(model), 'onnxruntime')).estimate(
        sample['rgb'], 'rgb8', sample['camera']).depth
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime'))
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        header = Header(frame_id='camera_optical_frame')
        header.stamp.sec = 7
        info_pub.publish(ros_io.intrinsics_to_camera_info(sample['camera'], header))
        time.sleep(0.2)
        image_pub.publish(ros_io.array_to_image(sample['rgb'], 'rgb8', header))
        wait_depth(probe)
        depth = ros_io.image_to_array(probe.messages('depth/image')[0])
    np.testing.assert_array_equal(depth, expected)
    assert depth.shape == (60, 80) and np.isfinite(depth).mean() > 0.99


def test_stereo_bag_to_dpn_exported_and_run_by_the_stereo_node(bags, tmp_path, capsys):
    run = tmp_path / 'dpn'
    rc = bag_loop.main(['monodepth', '--bag', str(bags['stereo']), '--run-dir', str(run),
                        'method.options.input_height=64', 'method.options.input_width=128',
                        'method.options.width_scale=0.125', 'trainer.stage_steps.main=200',
                        'trainer.batch_size=2', 'trainer.val_every=0', 'data.cache=true',
                        'trainer.threads=1', '--no-progress'])
    assert rc == 0
    assert 'method:=stereo' in capsys.readouterr().out
    model = run / 'model.onnx'
    spec = spec_of(model)
    assert (spec.method, spec.output_kind, spec.input_size) == ('monodepth',
                                                                'disparity_fraction', (64, 128))

    from depth_nodes.nodes.stereo_depth_node import StereoDepthNode
    from depth_nodes.runtime.model import open_model
    from depth_nodes.runtime.stereo_estimator import LearnedStereoEstimator
    held_out = RosbagDataset('test', bags=[str(bags['stereo'])], topics=STEREO,
                             method='monodepth')
    sample = held_out[0]
    assert sample['baseline'] == pytest.approx(0.54)       # the outdoor rig, from the P
    # The bag's right camera_info: the left intrinsics with P[0, 3] = -fx B.
    right_camera = replace(sample['camera'], tx=-sample['camera'].fx * sample['baseline'])
    expected = LearnedStereoEstimator(open_model(str(model), 'onnxruntime')).estimate(
        sample['rgb'], 'rgb8', sample['right'], 'rgb8', sample['camera'], right_camera).depth
    factory = functools.partial(StereoDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime'))
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        pubs = {name: probe.publisher(kind, topic) for name, kind, topic in (
            ('left', Image, 'left/image_rect'), ('right', Image, 'right/image_rect'),
            ('left_info', CameraInfo, 'left/camera_info'),
            ('right_info', CameraInfo, 'right/camera_info'))}
        assert probe.wait_for_subscribers(pubs['left']) and \
            probe.wait_for_subscribers(pubs['right_info'])
        header = Header(frame_id='camera_optical_frame')
        header.stamp.sec = 9
        pubs['left_info'].publish(ros_io.intrinsics_to_camera_info(sample['camera'], header))
        pubs['right_info'].publish(ros_io.intrinsics_to_camera_info(right_camera, header))
        time.sleep(0.2)
        pubs['left'].publish(ros_io.array_to_image(sample['rgb'], 'rgb8', header))
        pubs['right'].publish(ros_io.array_to_image(sample['right'], 'rgb8', header))
        wait_depth(probe)
        depth = ros_io.image_to_array(probe.messages('depth/image')[0])
    np.testing.assert_array_equal(depth, expected)
    assert depth.shape == (64, 128)
