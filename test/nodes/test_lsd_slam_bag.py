"""LSD-SLAM keyframe bags (ROS 1, lsd_slam_viewer/keyframeMsg) -> rosbag2 semi-dense input:
a bag written here with the exact message layout converts back to the same numbers."""
import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Rosbag1Writer
from rosbags.rosbag2 import Reader as Rosbag2Reader
from rosbags.typesys import Stores, get_typestore

from depth_nodes import lsd_slam_bag
from depth_nodes.lsd_slam_bag import INPUT_POINT_DENSE, KEYFRAME_TYPE, keyframe_typestore

H, W = 6, 8
FX, FY, CX, CY = 40.0, 41.0, 3.5, 2.5


def keyframe_cloud(seed):
    """InputPointDense records: some known inverse depths, the rest 0 (unknown)."""
    rng = np.random.default_rng(seed)
    points = np.zeros((H, W), dtype=INPUT_POINT_DENSE)
    known = rng.random((H, W)) < 0.3
    points['idepth'] = np.where(known, rng.uniform(0.2, 2.0, (H, W)), 0.0)
    points['idepth'][0, 0] = -0.5                  # negative: unknown too
    points['idepth_var'] = np.where(known, rng.uniform(1e-4, 1e-2, (H, W)), 0.0)
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    points['color'] = np.repeat(grey[:, :, None], 4, axis=2)
    return points, grey


def write_lsd_bag(path, clouds):
    store = keyframe_typestore()
    msg_t = store.types[KEYFRAME_TYPE]
    with Rosbag1Writer(path) as writer:
        conn = writer.add_connection('/lsd_slam/keyframes', KEYFRAME_TYPE, typestore=store)
        other = writer.add_connection('/lsd_slam/graph', 'std_msgs/msg/String',
                                      typestore=store)
        for index, cloud in enumerate(clouds):
            data = np.frombuffer(cloud.tobytes(), np.uint8) if cloud is not None else \
                np.zeros(0, np.uint8)
            msg = msg_t(id=index, time=100.25 + index, isKeyframe=True,
                        camToWorld=np.arange(7, dtype=np.float32), fx=FX, fy=FY, cx=CX, cy=CY,
                        height=H, width=W, pointcloud=data)
            stamp = (100 + index) * 10**9
            writer.write(conn, stamp, store.serialize_ros1(msg, KEYFRAME_TYPE))
            writer.write(other, stamp, store.serialize_ros1(
                store.types['std_msgs/msg/String'](data='graph'), 'std_msgs/msg/String'))
    return path


def read_rosbag2(path):
    store = get_typestore(Stores.ROS2_JAZZY)
    out = {}
    with Rosbag2Reader(path) as reader:
        for conn, timestamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append(
                (timestamp, store.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_keyframes_round_trip_into_semidense_topics(tmp_path):
    first, first_grey = keyframe_cloud(0)
    second, second_grey = keyframe_cloud(1)
    bag = write_lsd_bag(tmp_path / 'lsd.bag', [first, None, second])   # None: pose only
    counts = lsd_slam_bag.convert(bag, tmp_path / 'out', frame_id='cam')
    assert counts == {'keyframes': 2, 'without_pointcloud': 1}
    topics = read_rosbag2(tmp_path / 'out')
    assert sorted(topics) == ['/camera_info', '/image', '/semidense/depth',
                              '/semidense/variance']
    for (stamp, depth), (_, var), (_, image), (_, info), cloud, grey, seconds in zip(
            topics['/semidense/depth'], topics['/semidense/variance'], topics['/image'],
            topics['/camera_info'], (first, second), (first_grey, second_grey),
            (100.25, 102.25)):
        assert (depth.encoding, depth.height, depth.width) == ('32FC1', H, W)
        idepth = np.frombuffer(depth.data.tobytes(), np.float32).reshape(H, W)
        known = cloud['idepth'] > 0
        assert np.array_equal(np.isnan(idepth), ~known)
        assert np.array_equal(idepth[known], cloud['idepth'][known])
        variance = np.frombuffer(var.data.tobytes(), np.float32).reshape(H, W)
        assert np.array_equal(variance[known], cloud['idepth_var'][known])
        assert np.isnan(variance[~known]).all()
        assert image.encoding == 'mono8'
        assert np.array_equal(np.frombuffer(image.data.tobytes(), np.uint8).reshape(H, W),
                              grey)
        assert list(info.k) == [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
        assert (info.width, info.height, info.header.frame_id) == (W, H, 'cam')
        assert (depth.header.stamp.sec, depth.header.stamp.nanosec) == \
            (int(seconds), 250_000_000)
        assert stamp == int(seconds) * 10**9     # bag time of the ROS 1 message kept


def test_converted_inverse_depth_reads_as_metres_in_the_node_pipeline(tmp_path):
    from depth_nodes.core.semidense import depth_from_semidense_image
    cloud, _ = keyframe_cloud(2)
    lsd_slam_bag.convert(write_lsd_bag(tmp_path / 'lsd.bag', [cloud]), tmp_path / 'out')
    _, depth_msg = read_rosbag2(tmp_path / 'out')['/semidense/depth'][0]
    idepth = np.frombuffer(depth_msg.data.tobytes(), np.float32).reshape(H, W)
    metres = depth_from_semidense_image(idepth, inverse_depth=True)
    known = cloud['idepth'] > 0
    assert np.allclose(metres[known], 1.0 / cloud['idepth'][known])
    assert np.isnan(metres[~known]).all()            # unknown stays unknown, never 0 m


def test_errors_name_the_file_and_the_topics(tmp_path, capsys):
    assert lsd_slam_bag.main(['--input', str(tmp_path / 'missing.bag'), '--output',
                              str(tmp_path / 'o')]) == 2
    assert 'missing.bag' in capsys.readouterr().err
    bag = write_lsd_bag(tmp_path / 'lsd.bag', [keyframe_cloud(0)[0]])
    assert lsd_slam_bag.main(['--input', str(bag), '--output', str(tmp_path / 'o'),
                              '--topic', '/nope']) == 2
    err = capsys.readouterr().err
    assert '/nope' in err and '/lsd_slam/keyframes [lsd_slam_viewer/msg/keyframeMsg]' in err
    assert not (tmp_path / 'o').exists()


def test_a_pointcloud_of_the_wrong_size_is_refused_and_no_bag_is_left(tmp_path):
    cloud, _ = keyframe_cloud(0)
    bag = write_lsd_bag(tmp_path / 'lsd.bag', [cloud, cloud[:3]])      # second: 3 rows
    with pytest.raises(lsd_slam_bag.KeyframeError, match='keyframe 1: pointcloud has 288 '):
        lsd_slam_bag.convert(bag, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
