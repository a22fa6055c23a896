"""process_bag on bags as robots record them: MCAP, CompressedImage topics, camera_info stored
after its image, topics of the wrong type."""
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fixtures.models import write_affine_model

from depth_nodes import process_bag as pb
from depth_nodes import ros_io
from depth_nodes.core.compressed import decode_compressed
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.dds_bag import open_bag
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import STEREO_TOPICS, sample_bag  # noqa: E402

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=0.1, max_depth=80.0)
FRAMES = 5


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('models') / 'affine.onnx', SPEC,
                              output_stride=2)


@pytest.fixture(scope='module')
def recorded_bag(tmp_path_factory):
    """MCAP, raw and jpeg-compressed images, each camera_info stored after its image."""
    return sample_bag('rgb', tmp_path_factory.mktemp('bags'), frames=FRAMES, height=48,
                      width=64, storage='mcap', compressed='jpeg', camera_info_last=True)


def messages(bag, topic):
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, bytes(raw)) for _, t, raw in reader.messages(connections=conns)]


def run(bag, output, model_path, image, **options):
    return pb.process_bag(bag, output, 'eigen', progress=False,
                          topics={'image': image, 'camera_info': '/camera/camera_info'},
                          parameters={'model': str(model_path), 'backend': 'onnxruntime'},
                          **options)


def depth_of(raw):
    return ros_io.image_to_array(ros_io.image_from_cdr(raw))


def test_compressed_mcap_bag_gives_mcap_with_every_frame_paired(
        recorded_bag, model_path, tmp_path):
    with open_bag(recorded_bag) as reader:
        order = [c.topic for c, _, _ in reader.messages()][:5]
    assert order.index('/camera/camera_info') > order.index('/camera/image/compressed')
    out = tmp_path / 'out'
    report = run(recorded_bag, out, model_path, '/camera/image/compressed')
    assert report.depth_images == FRAMES and not report.rejected
    # MCAP in, MCAP out, named after the output; nothing hidden or staged left anywhere.
    assert sorted(p.name for p in out.iterdir()) == ['metadata.yaml', 'out.mcap']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out']
    info = yaml.safe_load((out / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap'
    # 5 of 5 frames have their camera_info, though each was stored after its image.
    compressed = messages(recorded_bag, '/camera/image/compressed')
    depth = messages(out, '/depth/image')
    depth_info = messages(out, '/depth/camera_info')
    assert len(depth) == len(depth_info) == FRAMES
    assert [t for t, _ in depth_info] == [t for t, _ in compressed]
    # The depth is the model's on the decoded jpeg ...
    model = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime'))
    msg = ros_io.compressed_image_from_cdr(compressed[0][1])
    decoded, encoding = decode_compressed(msg.format, msg.data)
    assert encoding == 'rgb8'
    expected = model.estimate(decoded, 'rgb8', depth_range=(0.1, 80.0)).depth
    np.testing.assert_array_equal(depth_of(depth[0][1]), expected)
    # ... and the raw image's depth within jpeg error (quality 95: a few grey levels, times
    # this affine log-depth model's gain).
    raw = run(recorded_bag, tmp_path / 'raw', model_path, '/camera/image')
    assert raw.depth_images == FRAMES
    for (_, a), (_, b) in zip(depth, messages(tmp_path / 'raw', '/depth/image')):
        a, b = depth_of(a), depth_of(b)
        both = np.isfinite(a) & np.isfinite(b)
        assert both.mean() > 0.5 and (np.isfinite(a) == np.isfinite(b)).mean() > 0.95
        relative = np.abs(a[both] - b[both]) / b[both]
        assert np.median(relative) < 0.03 and relative.max() < 0.15


def test_sqlite_in_sqlite_out_and_storage_override(recorded_bag, model_path, tmp_path):
    sqlite_bag = sample_bag('rgb', tmp_path / 'bags', frames=2, height=48, width=64)
    run(sqlite_bag, tmp_path / 'a', model_path, '/camera/image')
    assert sorted(p.name for p in (tmp_path / 'a').iterdir()) == ['a.db3', 'metadata.yaml']
    run(recorded_bag, tmp_path / 'b', model_path, '/camera/image', storage='sqlite3')
    assert sorted(p.name for p in (tmp_path / 'b').iterdir()) == ['b.db3', 'metadata.yaml']


def test_a_topic_of_another_type_is_an_error_before_any_output(recorded_bag, model_path,
                                                               tmp_path, capsys):
    code = pb.main([str(recorded_bag), str(tmp_path / 'out'), '--model', str(model_path),
                    '--backend', 'onnxruntime', '--no-progress',
                    '--image', '/camera/image', '--camera_info', '/camera/image/compressed'])
    assert code == 1
    err = capsys.readouterr().err
    assert ('topic /camera/image/compressed is sensor_msgs/msg/CompressedImage, but the '
            "'camera_info' input of mono_depth_node takes sensor_msgs/msg/CameraInfo") in err
    assert list(tmp_path.iterdir()) == []


def test_bad_compressed_frames_are_counted_and_the_rest_processed(recorded_bag, model_path,
                                                                  tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    store = ros_io._typestore()
    bad = tmp_path / 'bad'
    with Writer(bad, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/camera/image/compressed', ros_io.COMPRESSED_IMAGE_TYPE,
                                     typestore=store)
        for i, (stamp, raw) in enumerate(messages(recorded_bag, '/camera/image/compressed')):
            if i == 1:
                msg = store.deserialize_cdr(raw, ros_io.COMPRESSED_IMAGE_TYPE)
                msg.data = msg.data[:50]                        # truncated jpeg
                raw = store.serialize_cdr(msg, ros_io.COMPRESSED_IMAGE_TYPE)
            writer.write(conn, stamp, raw)
    warnings = []
    report = run(bad, tmp_path / 'out', model_path, '/camera/image/compressed',
                 warn=warnings.append)
    assert report.depth_images == FRAMES - 1
    assert report.rejected == {'compressed_data': 1}
    assert any('do not decode' in w and '/camera/image/compressed' in w for w in warnings)


def test_stereo_pairs_wait_for_camera_infos_stored_after_them(tmp_path):
    bag = sample_bag('stereo', tmp_path / 'bags', frames=3, height=48, width=64,
                     camera_info_last=True)
    topics = {name: STEREO_TOPICS[key][0] for name, key in (
        ('left/image_rect', 'left_image'), ('right/image_rect', 'right_image'),
        ('left/camera_info', 'left_camera_info'), ('right/camera_info', 'right_camera_info'))}
    report = pb.process_bag(bag, tmp_path / 'out', 'sgbm', topics=topics, progress=False,
                            parameters={'model': '', 'sgbm.num_disparities': 16})
    assert report.depth_images == 3 and not report.rejected
    assert len(messages(tmp_path / 'out', '/depth/camera_info')) == 3


def test_semidense_compressed_depth_input(tmp_path):
    """semidense/depth as compressedDepth (32FC1 quantised inverse depth), camera_info last:
    the dense depth keeps the input depth, which is the raw one within Z^2 / A."""
    model = write_affine_model(tmp_path / 'semidense.onnx', ModelSpec(
        method='semidense', input_kind='semidense', input_names=('image',), input_height=48,
        input_width=64, input_channels=2, mean=(0.0, 0.0), std=(1.0, 1.0),
        output_name='depth', output_kind='metric_depth', min_depth=0.01, max_depth=100.0,
        extras={'scale_percentile': 100.0}), weights=(1.0, -0.5), bias=0.5)
    bag = sample_bag('semidense', tmp_path / 'bags', frames=3, height=48, width=64,
                     compressed='png', camera_info_last=True)
    report = pb.process_bag(bag, tmp_path / 'out', 'semidense', progress=False,
                            topics={'camera_info': '/camera/camera_info',
                                    'semidense/depth': '/semidense/depth/compressedDepth'},
                            parameters={'model': str(model), 'backend': 'onnxruntime'})
    assert report.depth_images == 3 and not report.rejected
    assert len(messages(tmp_path / 'out', '/depth/camera_info')) == 3
    sparse = depth_of(messages(bag, '/semidense/depth')[0][1])
    dense = depth_of(messages(tmp_path / 'out', '/depth/image')[0][1])
    known = np.isfinite(sparse)
    assert known.sum() > 100
    # make_sample_bags writes compressedDepth with depth_max 100 m: A = 10100.
    error = dense[known] - sparse[known]
    assert (error >= -1e-4).all() and (error <= sparse[known] ** 2 / 10100 + 1e-4).all()
