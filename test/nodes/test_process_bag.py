"""Offline bag processing (depth_nodes.process_bag) against the running node, byte for byte."""
import functools
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures.models import write_affine_model
from fixtures.ros_harness import RELIABLE, overrides, ros_graph
from sensor_msgs.msg import CameraInfo, Image

from depth_nodes import process_bag as pb
from depth_nodes import ros_io
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.dds_bag import open_bag
from depth_nodes.frames import MonoDepthFramePath
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import NIR_TOPICS, RGB_TOPICS, STEREO_TOPICS  # noqa: E402
from make_sample_bags import sample_bag  # noqa: E402

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=0.1, max_depth=80.0)
FRAMES = 4
TOPICS = {'image': RGB_TOPICS['image'][0], 'camera_info': RGB_TOPICS['camera_info'][0]}


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('models') / 'affine.onnx', SPEC,
                              output_stride=2)


@pytest.fixture(scope='module')
def semidense_bag(tmp_path_factory):
    return sample_bag('semidense', tmp_path_factory.mktemp('bags'), frames=3, height=48,
                      width=64)


@pytest.fixture(scope='module')
def camera_bag(tmp_path_factory):
    return sample_bag('rgb', tmp_path_factory.mktemp('bags'), frames=FRAMES, height=48,
                      width=64, rate_hz=20.0)


def messages(bag, topic):
    """[(bag time ns, bytes)] of one topic."""
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, bytes(raw)) for _, t, raw in reader.messages(connections=conns)]


def run(camera_bag, output, model_path, **options):
    options.setdefault('topics', TOPICS)
    return pb.process_bag(camera_bag, output, 'eigen', progress=False,
                          parameters={'model': str(model_path), 'backend': 'onnxruntime'},
                          **options)


def node_outputs_over_dds(factory, bag, info=('camera_info', TOPICS['camera_info']),
                          image=('image', TOPICS['image']),
                          outputs=(('depth/image', Image), ('depth/camera_info', CameraInfo)),
                          frame=None):
    """Publish a bag's frames one at a time to a running node and return its serialized
    ``outputs``. ``frame``: [(node input, bag topic, type)] published in this order per frame
    (default: ``info`` then ``image``, each (node input, bag topic))."""
    frame = frame or [(*info, CameraInfo), (*image, Image)]
    streams = [messages(bag, topic) for _, topic, _ in frame]
    received = {topic: [] for topic, _ in outputs}
    lock = threading.Lock()
    with ros_graph(factory) as (probe, _):
        def keep(topic, raw):
            with lock:
                received[topic].append(raw)
        for topic, msg_type in outputs:
            probe.node.create_subscription(msg_type, topic, functools.partial(keep, topic),
                                           RELIABLE, raw=True)
        pubs = [probe.publisher(msg_type, name) for name, _, msg_type in frame]
        assert all(probe.wait_for_subscribers(pub) for pub in pubs)
        time.sleep(0.3)
        for i, raws in enumerate(zip(*streams)):
            for pub, (_, raw) in zip(pubs, raws):
                pub.publish(raw)
                time.sleep(0.1)          # one at a time: the node keeps the newest
            assert probe.wait_for(lambda: all(len(r) > i for r in received.values()), 10.0)
    return received


def mono_node(model_path):
    return functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model_path), backend='onnxruntime'))


def test_offline_depth_is_the_nodes_depth_byte_for_byte(camera_bag, model_path, tmp_path):
    report = run(camera_bag, tmp_path / 'out', model_path)
    assert (report.depth_images, report.messages_in, report.messages_copied) == \
        (FRAMES, 3 * FRAMES, 3 * FRAMES)
    assert not report.rejected
    offline_depth = messages(tmp_path / 'out', '/depth/image')
    offline_info = messages(tmp_path / 'out', '/depth/camera_info')
    online = node_outputs_over_dds(mono_node(model_path), camera_bag)
    assert [raw for _, raw in offline_depth] == online['depth/image']
    # CameraInfo is compared field by field: CDR alignment padding is not initialised.
    from rclpy.serialization import deserialize_message
    assert [deserialize_message(raw, CameraInfo) for _, raw in offline_info] == \
        [deserialize_message(raw, CameraInfo) for raw in online['depth/camera_info']]
    # Outputs are written at their input's bag time; every input is copied unchanged.
    inputs = messages(camera_bag, TOPICS['image'])
    assert [t for t, _ in offline_depth] == [t for t, _ in inputs]
    for topic, _ in RGB_TOPICS.values():
        assert messages(tmp_path / 'out', topic) == messages(camera_bag, topic)
    # ... and the depth is the model's: the estimator run by hand on the first frame.
    first = ros_io.image_from_cdr(inputs[0][1])
    expected = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime')).estimate(
        ros_io.image_to_array(first), 'rgb8', depth_range=(0.1, 80.0)).depth
    depth = ros_io.image_from_cdr(offline_depth[0][1])
    np.testing.assert_array_equal(ros_io.image_to_array(depth), expected)
    assert (depth.header.stamp.sec, depth.header.stamp.nanosec, depth.header.frame_id) == \
        (first.header.stamp.sec, first.header.stamp.nanosec, 'camera_optical_frame')


def test_colored_points_namespace_and_mcap(camera_bag, model_path, tmp_path):
    report = run(camera_bag, tmp_path / 'out', model_path, colored=True, points=True,
                 namespace='front', storage='mcap')
    assert report.depth_images == FRAMES
    assert (tmp_path / 'out' / 'metadata.yaml').exists()
    assert len(list((tmp_path / 'out').glob('*.mcap'))) == 1
    colored = messages(tmp_path / 'out', '/front/depth/colored')
    points = messages(tmp_path / 'out', '/front/depth/points')
    assert len(colored) == len(points) == FRAMES
    depth = ros_io.image_to_array(ros_io.image_from_cdr(
        messages(tmp_path / 'out', '/front/depth/image')[0][1]))
    from depth_nodes.core.colorize import colorize_depth
    np.testing.assert_array_equal(
        ros_io.image_to_array(ros_io.image_from_cdr(colored[0][1])),
        colorize_depth(depth, 0.1, 80.0))
    store = ros_io._typestore()
    cloud = store.deserialize_cdr(points[0][1], 'sensor_msgs/msg/PointCloud2')
    assert (cloud.width, cloud.height, cloud.point_step) == (32, 24, 16)   # stride 2
    xyz = np.frombuffer(cloud.data, np.float32).reshape(24, 32, 4)
    assert xyz[5, 7, 2] == depth[10, 14]          # z of point (row 5, col 7) = depth[10, 14]


def test_bad_frames_are_counted_and_the_rest_processed(camera_bag, model_path, tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_JAZZY)
    images = messages(camera_bag, TOPICS['image'])
    bad = tmp_path / 'bad'
    with Writer(bad, version=9) as writer:
        conn = writer.add_connection(TOPICS['image'], 'sensor_msgs/msg/Image', typestore=store)
        for i, (stamp, raw) in enumerate(images):
            if i == 1:
                msg = ros_io.image_from_cdr(raw)
                msg.data = msg.data[:100]                       # truncated pixels
                raw = store.serialize_cdr(msg, 'sensor_msgs/msg/Image')
            if i == 2:
                raw = raw[:40]                                   # truncated message
            writer.write(conn, stamp, raw)
    warnings = []
    report = run(bad, tmp_path / 'out', model_path, warn=warnings.append)
    assert report.depth_images == FRAMES - 2
    assert report.rejected == {'data_size': 1, 'cdr': 1}
    assert any('no /camera/camera_info' in w for w in warnings)      # optional input absent
    assert any('data has' in w and 'height * step' in w for w in warnings)
    stamps = [t for t, _ in messages(tmp_path / 'out', '/depth/image')]
    assert stamps == [images[0][0], images[3][0]]


def test_a_failing_run_leaves_nothing_that_looks_like_a_bag(camera_bag, model_path, tmp_path,
                                                            monkeypatch):
    calls = []
    original = MonoDepthFramePath.accept

    def accept_then_crash(self, name, message):
        calls.append(name)
        if len(calls) == 5:
            raise RuntimeError('engine died')
        return original(self, name, message)
    monkeypatch.setattr(MonoDepthFramePath, 'accept', accept_then_crash)
    with pytest.raises(RuntimeError, match='engine died'):
        run(camera_bag, tmp_path / 'out', model_path)
    assert list(tmp_path.iterdir()) == []          # no output, no partial directory


def test_nir_bag_through_a_gray_model(model_path, tmp_path):
    bag = sample_bag('nir', tmp_path / 'bags', frames=2, height=48, width=64)
    report = run(bag, tmp_path / 'out', model_path,
                 topics={'image': NIR_TOPICS['image'][0],
                         'camera_info': NIR_TOPICS['camera_info'][0]})
    assert report.depth_images == 2
    nir = ros_io.image_from_cdr(messages(bag, NIR_TOPICS['image'][0])[0][1])
    assert nir.encoding == 'mono8'
    expected = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime')).estimate(
        ros_io.image_to_array(nir), 'mono8', depth_range=(0.1, 80.0)).depth
    got = ros_io.image_from_cdr(messages(tmp_path / 'out', '/depth/image')[0][1])
    np.testing.assert_array_equal(ros_io.image_to_array(got), expected)


def test_ros1_bag_input(camera_bag, model_path, tmp_path):
    """A ROS 1 bag (what older robots recorded) is converted to CDR on the way through."""
    from rosbags.rosbag1 import Writer as Writer1
    from rosbags.typesys import Stores, get_typestore
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    ros2 = get_typestore(Stores.ROS2_JAZZY)
    bag1 = tmp_path / 'old.bag'
    images = messages(camera_bag, TOPICS['image'])[:2]
    with Writer1(bag1) as writer:
        conn = writer.add_connection('/camera/image', 'sensor_msgs/msg/Image', typestore=ros1)
        for stamp, raw in images:
            msg = ros2.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
            header = ros1.types['std_msgs/msg/Header'](
                seq=0, stamp=msg.header.stamp, frame_id=msg.header.frame_id)
            msg1 = ros1.types['sensor_msgs/msg/Image'](
                header=header, height=msg.height, width=msg.width, encoding=msg.encoding,
                is_bigendian=msg.is_bigendian, step=msg.step, data=msg.data)
            writer.write(conn, stamp, ros1.serialize_ros1(msg1, 'sensor_msgs/msg/Image'))
    report = run(bag1, tmp_path / 'out', model_path, topics={'image': '/camera/image'})
    assert report.depth_images == 2
    # Converted inputs are the ROS 2 messages of the original bag, byte for byte.
    assert messages(tmp_path / 'out', '/camera/image') == images


def test_cli_errors_exit_1_and_name_the_problem(camera_bag, model_path, tmp_path, capsys):
    common = ['--model', str(model_path), '--backend', 'onnxruntime', '--no-progress']
    assert pb.main([str(camera_bag), str(tmp_path / 'a')] + common) == 1
    err = capsys.readouterr().err
    assert 'no topic /image' in err and '/camera/image [sensor_msgs/msg/Image]' in err
    assert pb.main([str(tmp_path / 'missing'), str(tmp_path / 'b')] + common) == 1
    assert 'input bag not found' in capsys.readouterr().err
    assert pb.main([str(camera_bag), str(tmp_path / 'c'), '--image', '/camera/image',
                    '--model', str(tmp_path / 'nope.onnx'), '--no-progress']) == 1
    assert 'nope.onnx' in capsys.readouterr().err
    assert pb.main([str(camera_bag), str(tmp_path / 'd'), '--image', '/camera/image',
                    '-p', 'min_depth:=2.0'] + common) == 0
    assert 'wrote' in capsys.readouterr().out
    depth = ros_io.image_to_array(ros_io.image_from_cdr(
        messages(tmp_path / 'd', '/depth/image')[0][1]))
    assert np.isfinite(depth).any() and np.nanmin(depth) >= 2.0   # -p min_depth applied
    assert pb.main([str(camera_bag), str(tmp_path / 'd'), '--image', '/camera/image']
                   + common) == 1
    assert 'exists' in capsys.readouterr().err
    assert pb.main([str(camera_bag), str(tmp_path / 'e'), '--image', '/camera/image',
                    '-p', 'post_process:=pp'] + common) == 1      # as the node: refused
    assert "post_process 'pp' needs a disparity model" in capsys.readouterr().err
    assert pb.main([str(camera_bag), str(tmp_path / 'e'), '--topic', 'left/image:=/x']
                   + common) == 1
    assert "no input(s) ['left/image']" in capsys.readouterr().err
    assert pb.main([str(camera_bag), str(tmp_path / 'e'), '--topic', 'image:=/camera/image']
                   + common) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['d', 'e']


def test_nir_offline_two_stage_depth_and_pseudo_rgb_are_the_nodes(tmp_path):
    from fixtures.models import write_translation_model

    from depth_nodes.nodes.nir_depth_node import NirDepthNode
    ctn = write_translation_model(tmp_path / 'ctn.onnx', ModelSpec(
        method='nir_ctn', input_kind='nir', input_height=16, input_width=32, input_channels=1,
        mean=(0.5,), std=(0.5,), output_name='pseudo_rgb', output_kind='translated_image'))
    dpn = write_affine_model(tmp_path / 'dpn.onnx', ModelSpec(
        method='dpn', input_kind='rgb', input_height=8, input_width=16, output_name='disparity',
        output_kind='disparity_fraction', baseline=0.5, focal_fraction=0.8, min_depth=0.1,
        max_depth=100.0), weights=(0.1, 0.1, 0.1), bias=0.0)
    bag = sample_bag('nir', tmp_path / 'bags', frames=3, height=48, width=64)
    # config/nir.yaml: publish_pseudo_rgb true; topics nir/image, nir/camera_info = the bag's.
    report = pb.process_bag(bag, tmp_path / 'out', 'nir', progress=False, parameters={
        'model': str(ctn), 'depth_model': str(dpn), 'backend': 'onnxruntime'})
    assert report.depth_images == 3 and not report.rejected
    factory = functools.partial(NirDepthNode, parameter_overrides=overrides(
        model=str(ctn), depth_model=str(dpn), backend='onnxruntime', publish_pseudo_rgb=True))
    online = node_outputs_over_dds(
        factory, bag, info=('nir/camera_info', NIR_TOPICS['camera_info'][0]),
        image=('nir/image', NIR_TOPICS['image'][0]),
        outputs=(('depth/image', Image), ('nir/pseudo_rgb', Image)))
    for topic in ('depth/image', 'nir/pseudo_rgb'):
        assert [raw for _, raw in messages(tmp_path / 'out', '/' + topic)] == online[topic]
    depth = ros_io.image_to_array(ros_io.image_from_cdr(online['depth/image'][0]))
    assert np.isfinite(depth).all() and 0.1 <= depth.min() and depth.max() <= 100.0


def test_semidense_offline_depth_is_the_nodes(semidense_bag, tmp_path):
    from depth_nodes.nodes.semidense_depth_node import SemiDenseDepthNode
    model = write_affine_model(tmp_path / 'semidense.onnx', ModelSpec(
        method='semidense', input_kind='semidense', input_names=('image',), input_height=48,
        input_width=64, input_channels=2, mean=(0.0, 0.0), std=(1.0, 1.0),
        output_name='depth', output_kind='metric_depth', min_depth=0.01, max_depth=100.0,
        extras={'scale_percentile': 100.0}), weights=(1.0, -0.5), bias=0.5)
    # config/semidense.yaml: input depth, keep_input_depth; semidense/depth = the bag's.
    report = pb.process_bag(semidense_bag, tmp_path / 'out', 'semidense',
                            topics={'camera_info': TOPICS['camera_info']},
                            parameters={'model': str(model), 'backend': 'onnxruntime'},
                            progress=False)
    assert report.depth_images == 3 and not report.rejected
    factory = functools.partial(SemiDenseDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime'))
    online = node_outputs_over_dds(factory, semidense_bag,
                                   image=('semidense/depth', '/semidense/depth'))
    assert [raw for _, raw in messages(tmp_path / 'out', '/depth/image')] == \
        online['depth/image']
    # Where the semi-dense map knew the depth, the dense depth is that depth.
    sparse = ros_io.image_to_array(ros_io.image_from_cdr(messages(semidense_bag,
                                                                  '/semidense/depth')[0][1]))
    dense = ros_io.image_to_array(ros_io.image_from_cdr(online['depth/image'][0]))
    known = np.isfinite(sparse)
    assert 0.05 < known.mean() < 0.3
    np.testing.assert_array_equal(dense[known], sparse[known])


@pytest.mark.parametrize('method', ['sgbm', 'stereo'])
def test_stereo_offline_depth_and_disparity_are_the_nodes(method, tmp_path):
    from stereo_msgs.msg import DisparityImage

    from depth_nodes.nodes.stereo_depth_node import StereoDepthNode
    bag = sample_bag('stereo', tmp_path / 'bags', frames=3, height=48, width=64)
    if method == 'sgbm':      # StereoSGBM, no model: 16 disparities cover >= 1.6 m here
        params = {'model': '', 'sgbm.num_disparities': 16}
    else:                     # a disparity model on the left image (DPN stand-in)
        params = {'model': str(write_affine_model(tmp_path / 'dpn.onnx', ModelSpec(
            method='dpn', input_kind='rgb', input_height=24, input_width=32,
            output_name='disparity', output_kind='disparity_fraction', baseline=0.54,
            focal_fraction=0.71, min_depth=0.1, max_depth=100.0),
            weights=(0.02, 0.02, 0.02), bias=0.1)), 'backend': 'onnxruntime'}
    topics = {name: STEREO_TOPICS[key][0] for name, key in (
        ('left/image_rect', 'left_image'), ('right/image_rect', 'right_image'),
        ('left/camera_info', 'left_camera_info'), ('right/camera_info', 'right_camera_info'))}
    report = pb.process_bag(bag, tmp_path / 'out', method, topics=topics, parameters=params,
                            progress=False)
    assert report.depth_images == 3 and not report.rejected
    factory = functools.partial(StereoDepthNode, parameter_overrides=overrides(
        **{k.replace('.', '__'): v for k, v in params.items()}))
    frame = [(name, topics[name], CameraInfo) for name in ('left/camera_info',
                                                           'right/camera_info')] \
        + [(name, topics[name], Image) for name in ('left/image_rect', 'right/image_rect')]
    online = node_outputs_over_dds(factory, bag, frame=frame, outputs=(
        ('depth/image', Image), ('disparity', DisparityImage)))
    offline_depth = [raw for _, raw in messages(tmp_path / 'out', '/depth/image')]
    assert offline_depth == online['depth/image']
    # DisparityImage is compared field by field (CDR padding is not initialised).
    from rclpy.serialization import deserialize_message
    assert [deserialize_message(raw, DisparityImage) for _, raw in
            messages(tmp_path / 'out', '/disparity')] == \
        [deserialize_message(raw, DisparityImage) for raw in online['disparity']]
    depth = ros_io.image_to_array(ros_io.image_from_cdr(offline_depth[0]))
    truth = ros_io.image_to_array(ros_io.image_from_cdr(
        messages(bag, STEREO_TOPICS['ground_truth'][0])[0][1]))
    if method == 'sgbm':     # matched near pixels (disparity >= 4 px) lie near the truth
        near = np.isfinite(depth) & (truth < 24.7 / 4)
        assert near.sum() > 100
        assert np.median(np.abs(depth[near] - truth[near]) / truth[near]) < 0.1


def test_scale_from_offline_fits_sparse_depth_that_follows_its_image(
        semidense_bag, model_path, tmp_path):
    # eigen with scale_from: the bag's semidense/depth (true depth at the LSD-SLAM-like mask)
    # is stamped as its image but written after it, as a SLAM map follows its frame.
    # process_bag waits (INFO_LOOKAHEAD_S of bag time) for the kept inputs of an image's
    # stamp, so every frame is scaled by the fit to its own sparse depth.
    from depth_nodes.core.scale_fit import fit_depth_scale
    params = {'model': str(model_path), 'backend': 'onnxruntime', 'scale_from': 'semidense'}
    report = pb.process_bag(semidense_bag, tmp_path / 'out', 'eigen', parameters=params,
                            topics={'image': TOPICS['image'],
                                    'semidense/depth': '/semidense/depth'}, progress=False)
    images, sparse = (
        [ros_io.image_to_array(ros_io.image_from_cdr(raw)) for _, raw in messages(
            semidense_bag, topic)] for topic in (TOPICS['image'], '/semidense/depth'))
    assert report.depth_images == len(images) and not report.rejected
    estimator = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime'),
                                   scale_fitted=True)
    outputs = messages(tmp_path / 'out', '/depth/image')
    for image, known, (_, raw) in zip(images, sparse, outputs):
        prediction = estimator.predict(image, 'rgb8').depth
        expected = fit_depth_scale(prediction, known,
                                   inlier_log_error=np.log1p(0.1)).apply(prediction)
        expected[(expected < 0.1) | (expected > 80.0)] = np.nan
        offline = ros_io.image_to_array(ros_io.image_from_cdr(raw))
        np.testing.assert_array_equal(offline, expected)
