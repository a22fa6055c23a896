"""The rosbag dataset source and inspect_bag on bags written directly with rosbags (an MCAP
rosbag2 with compressed colour and 16UC1 depth of another size, a ROS 1 stereo bag), not by
this package's sample-bag tool."""
import io
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.datasets.rosbag import (BagDataError, RosbagDataset, decode_compressed,
                                      holdout_range)
from training.inspect_bag import inspect

START = 1_650_000_000 * 10**9
MS = 10**6
COLOR = (24, 32)          # rows, cols of the colour camera
DEPTH = (12, 16)          # the depth camera: same field of view, half the resolution


def color_image(frame: int) -> np.ndarray:
    rng = np.random.default_rng(frame)
    return rng.integers(0, 256, (*COLOR, 3), dtype=np.uint8)


def depth_mm(frame: int) -> np.ndarray:
    """Depth in mm growing along the columns: column c holds 1000 + 10 c + frame."""
    cols = np.arange(DEPTH[1], dtype=np.uint16)
    depth = np.repeat((1000 + 10 * cols + frame)[None, :], DEPTH[0], axis=0)
    depth[0, 0] = 0                                  # one unknown pixel
    return depth.astype(np.uint16)


def _header(types, stamp_ns: int, ros1: bool = False):
    time = types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                nanosec=stamp_ns % 10**9)
    header = types['std_msgs/msg/Header']
    return header(seq=0, stamp=time, frame_id='cam') if ros1 else \
        header(stamp=time, frame_id='cam')


def _camera_info(types, stamp_ns, rows, cols, fx, tx=0.0, ros1=False):
    info = types['sensor_msgs/msg/CameraInfo']
    roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                    width=0, do_rectify=False)
    cx, cy = (cols - 1) / 2, (rows - 1) / 2
    k = np.array([fx, 0, cx, 0, fx, cy, 0, 0, 1], np.float64)
    p = np.array([fx, 0, cx, tx, 0, fx, cy, 0, 0, 0, 1, 0], np.float64)
    r = np.eye(3).reshape(-1)
    fields = dict(header=_header(types, stamp_ns, ros1), height=rows, width=cols,
                  distortion_model='plumb_bob', binning_x=0, binning_y=0, roi=roi)
    if ros1:
        return info(**fields, D=np.zeros(5), K=k, R=r, P=p)
    return info(**fields, d=np.zeros(5), k=k, r=r, p=p)


def _image(types, stamp_ns, array, encoding, ros1=False):
    channels = 1 if array.ndim == 2 else array.shape[2]
    return types['sensor_msgs/msg/Image'](
        header=_header(types, stamp_ns, ros1), height=array.shape[0], width=array.shape[1],
        encoding=encoding, is_bigendian=0, step=array.shape[1] * array.itemsize * channels,
        data=np.frombuffer(array.tobytes(), np.uint8))


@pytest.fixture(scope='module')
def rgbd_mcap(tmp_path_factory):
    """10 frames at 10 Hz: PNG-compressed colour, 16UC1 depth 5 ms later at half the size;
    frames 3 and 7 have depth 50 ms off (beyond the 20 ms tolerance)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    path = tmp_path_factory.mktemp('bags') / 'rgbd_mcap'
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in [
            ('/cam/color/image/compressed', 'sensor_msgs/msg/CompressedImage'),
            ('/cam/color/camera_info', 'sensor_msgs/msg/CameraInfo'),
            ('/cam/depth/image', 'sensor_msgs/msg/Image'),
            ('/cam/depth/camera_info', 'sensor_msgs/msg/CameraInfo')]}

        def put(topic, msg, stamp):
            writer.write(conns[topic], stamp, store.serialize_cdr(msg, msg.__msgtype__))
        for frame in range(10):
            t = START + frame * 100 * MS
            ok, png = cv2.imencode('.png', color_image(frame)[:, :, ::-1])   # BGR, as drivers
            put('/cam/color/image/compressed', types['sensor_msgs/msg/CompressedImage'](
                header=_header(types, t), format='rgb8; png compressed bgr8',
                data=png.reshape(-1)), t)
            put('/cam/color/camera_info', _camera_info(types, t, *COLOR, fx=32.0), t)
            td = t + (50 if frame in (3, 7) else 5) * MS
            put('/cam/depth/image', _image(types, td, depth_mm(frame), '16UC1'), td)
            put('/cam/depth/camera_info', _camera_info(types, td, *DEPTH, fx=16.0), td)
    return path


@pytest.fixture(scope='module')
def stereo_ros1(tmp_path_factory):
    """A ROS 1 bag: 6 rectified rgb8 pairs, right P[0, 3] = -fx * 0.12 m."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    path = tmp_path_factory.mktemp('bags') / 'stereo.bag'
    with Writer(path) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in [
            ('/stereo/left/image_rect', 'sensor_msgs/msg/Image'),
            ('/stereo/right/image_rect', 'sensor_msgs/msg/Image'),
            ('/stereo/left/camera_info', 'sensor_msgs/msg/CameraInfo'),
            ('/stereo/right/camera_info', 'sensor_msgs/msg/CameraInfo')]}
        for frame in range(6):
            t = START + frame * 50 * MS
            for side, tx in (('left', 0.0), ('right', -20.0 * 0.12)):
                image = color_image(10 * frame + (side == 'right'))
                msgs = {f'/stereo/{side}/image_rect': _image(types, t, image, 'rgb8', True),
                        f'/stereo/{side}/camera_info':
                            _camera_info(types, t, *COLOR, fx=20.0, tx=tx, ros1=True)}
                for topic, msg in msgs.items():
                    writer.write(conns[topic], t, store.serialize_ros1(msg, msg.__msgtype__))
    return path


RGBD_TOPICS = {'image': '/cam/color/image/compressed', 'depth': '/cam/depth/image',
               'camera_info': '/cam/color/camera_info',
               'depth_camera_info': '/cam/depth/camera_info'}


def test_rgbd_pairs_by_stamp_holds_out_the_end_and_registers_depth(rgbd_mcap):
    train = RosbagDataset('train', bags=[str(rgbd_mcap)], topics=RGBD_TOPICS, method='eigen',
                          holdout=0.2)
    val = RosbagDataset('val', bags=[str(rgbd_mcap)], topics=RGBD_TOPICS, method='eigen',
                        holdout=0.2)
    # Cut at 0.8 x 900 ms = 720 ms: frames 0-7 train, 8-9 held out; 3 and 7 unpaired.
    frames = [int(s['name'].split('@')[1]) - START for s in train]
    assert frames == [f * 100 * MS for f in (0, 1, 2, 4, 5, 6)]
    assert [int(s['name'].split('@')[1]) - START for s in val] == [800 * MS, 900 * MS]
    sample = train[1]
    assert np.array_equal(sample['rgb'], color_image(1))          # PNG decoded to RGB
    assert sample['depth'].shape == COLOR and sample['depth'].dtype == np.float32
    # Depth pixel u_d = (u - 15.5) / 32 * 16 + 7.5 = u / 2 - 0.25, nearest neighbour.
    for u in range(1, COLOR[1]):
        u_d = int(round(u / 2 - 0.25))
        assert sample['depth'][5, u] == pytest.approx((1000 + 10 * u_d + 1) / 1000.0)
    assert np.isnan(sample['depth'][0, 1])          # the 0 mm pixel (0, 0) is unknown
    assert sample['camera'].fx == 32.0


def test_stereo_from_a_ros1_bag_has_the_baseline_of_the_right_p(stereo_ros1):
    topics = {'left': '/stereo/left/image_rect', 'right': '/stereo/right/image_rect',
              'left_camera_info': '/stereo/left/camera_info',
              'right_camera_info': '/stereo/right/camera_info'}
    data = RosbagDataset('train', bags=[str(stereo_ros1)], topics=topics, method='monodepth',
                         holdout=0.0)
    assert len(data) == 6
    sample = data[2]
    assert np.array_equal(sample['rgb'], color_image(20))
    assert np.array_equal(sample['right'], color_image(21))
    assert sample['baseline'] == pytest.approx(0.12)
    assert sample['camera'].fx == 20.0 and np.isnan(sample['disparity']).all()


def test_unpaired_roles_come_from_different_bags(rgbd_mcap, stereo_ros1):
    data = RosbagDataset('train', bags=[str(rgbd_mcap), str(stereo_ros1)], method='cyclegan',
                         topics={'image': '/stereo/left/image_rect',
                                 'depth': '/cam/depth/image'}, holdout=0.0)
    assert len(data) == 10                        # the longer stream: 10 depth images
    sample = data[7]
    assert np.array_equal(sample['rgb'], color_image(10 * (7 % 6)))
    assert sample['depth'][1, 0] == pytest.approx((1000 + 7) / 1000.0)


def test_missing_topics_and_roles_are_named(rgbd_mcap):
    with pytest.raises(BagDataError, match="/cam/nothing"):
        RosbagDataset('train', bags=[str(rgbd_mcap)], method='eigen',
                      topics={'image': '/cam/nothing', 'depth': '/cam/depth/image'})
    with pytest.raises(BagDataError, match=r"lacks \['depth'\]"):
        RosbagDataset('train', bags=[str(rgbd_mcap)], method='eigen',
                      topics={'image': '/cam/color/image/compressed'})
    with pytest.raises(BagDataError, match='does not exist'):
        RosbagDataset('train', bags=['/nonexistent.bag'], method='eigen', topics=RGBD_TOPICS)


def test_compressed_depth_and_jpeg_decode():
    depth = np.array([[0, 1500], [65535, 42]], np.uint16)
    ok, png = cv2.imencode('.png', depth)
    data = np.frombuffer(struct.pack('<iff', 0, 0.0, 0.0) + png.tobytes(), np.uint8)
    decoded, encoding = decode_compressed('16UC1; compressedDepth png', data)
    assert encoding == '16UC1' and np.array_equal(decoded, depth)
    rgb = np.full((8, 8, 3), (200, 40, 10), np.uint8)
    ok, jpeg = cv2.imencode('.jpg', rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded, encoding = decode_compressed('jpeg', jpeg.reshape(-1))
    assert encoding == 'bgr8'
    assert np.abs(decoded[:, :, ::-1].astype(int) - rgb).max() <= 3


def test_holdout_is_the_last_part_in_time():
    stamps = [0, 10, 20, 30, 100]               # a gap: the cut is by time, not by count
    assert holdout_range(stamps, 'train', 0.25) == (0, 4)
    assert holdout_range(stamps, 'val', 0.25) == (4, 5)
    assert holdout_range(stamps, 'train', 0.0) == (0, 5)


def test_inspect_bag_lists_topics_and_commands_for_bags_it_did_not_write(
        rgbd_mcap, stereo_ros1):
    out = io.StringIO()
    candidates = inspect([rgbd_mcap, stereo_ros1], out=out)
    text = out.getvalue()
    assert '/cam/depth/image' in text and '16UC1 16x12' in text and '10.00' in text
    assert 'rgb8 32x24 (rgb8; png compressed bgr8)' in text
    assert 'baseline 0.12 m (right camera)' in text
    assert candidates['eigen'][0] == RGBD_TOPICS
    assert candidates['monodepth'] == [{
        'left': '/stereo/left/image_rect', 'right': '/stereo/right/image_rect',
        'left_camera_info': '/stereo/left/camera_info',
        'right_camera_info': '/stereo/right/camera_info'}]
    assert candidates['nir_ctn'] == []
    assert (f'python -m training.train --config training/configs/eigen_bag.yaml --bag '
            f'{rgbd_mcap} --topic image:=/cam/color/image/compressed') in text
    assert Path(str(stereo_ros1)).name in text


def test_training_from_a_bag_resumes_bit_identically(rgbd_mcap, tmp_path):
    """Stopped at step 1 and 3 and resumed == straight, with validation on the held-out end
    at every checkpoint: bag samples are read again by index, exactly."""
    from training.config import load_config
    from training.train import run_training
    config_path = Path(__file__).resolve().parents[2] / 'training' / 'configs' / \
        'eigen_bag.yaml'

    def config(run):
        return load_config(config_path, [
            'data.source=rosbag', f'data.bags=[{rgbd_mcap}]', 'data.holdout=0.2',
            *(f'data.topics.{k}={v}' for k, v in RGBD_TOPICS.items()),
            'method.options.width_scale=0.0625', 'method.options.fc_units=16',
            'trainer.batch_size=2', 'trainer.stage_steps.coarse=2',
            'trainer.stage_steps.fine=2', f'trainer.run_dir={run}', 'trainer.val_every=1',
            'trainer.checkpoint_every=1', 'trainer.export_onnx=false', 'trainer.threads=1',
            'trainer.device=cpu'])
    straight = run_training(config(tmp_path / 'a'), progress=False)
    run_training(config(tmp_path / 'b'), until_step=1, progress=False)
    run_training(config(tmp_path / 'b'), until_step=3, progress=False)
    resumed = run_training(config(tmp_path / 'b'), progress=False)
    assert straight.val_metrics == resumed.val_metrics and straight.val_metrics
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    for net, tensors in a['networks'].items():
        for key, value in tensors.items():
            assert np.array_equal(value.numpy(), b['networks'][net][key].numpy()), key


def semidense_m(frame: int) -> np.ndarray:
    """Semi-dense depth (32FC1 m) at the depth camera's size: every third pixel of every
    second row known (2 + 0.01 c + 0.001 frame m), the rest NaN, one pixel 0 (unknown)."""
    depth = np.full(DEPTH, np.nan, np.float32)
    cols = np.arange(0, DEPTH[1], 3)
    depth[::2, ::3] = (2.0 + 0.01 * cols + 0.001 * frame)[None, :]
    depth[0, 0] = 0.0
    return depth


@pytest.fixture(scope='module')
def semidense_bag(tmp_path_factory):
    """6 frames at 10 Hz: semi-dense depth (32FC1) from a SLAM and the dense target (16UC1)
    5 ms later; frame 4's target is 50 ms off (beyond the 20 ms tolerance)."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    path = tmp_path_factory.mktemp('bags') / 'semidense'
    with Writer(path, version=8) as writer:
        conns = {t: writer.add_connection(t, 'sensor_msgs/msg/Image', typestore=store)
                 for t in ('/slam/depth', '/rgbd/depth')}
        for frame in range(6):
            t = START + frame * 100 * MS
            td = t + (50 if frame == 4 else 5) * MS
            for topic, stamp, msg in (
                    ('/slam/depth', t, _image(types, t, semidense_m(frame), '32FC1')),
                    ('/rgbd/depth', td, _image(types, td, depth_mm(frame), '16UC1'))):
                writer.write(conns[topic], stamp, store.serialize_cdr(msg, msg.__msgtype__))
    return path


def test_semidense_from_recorded_semidense_depth_and_a_dense_target(semidense_bag):
    from training.models.semidense import SemiDenseConfig, SemiDenseMethod
    topics = {'semidense': '/slam/depth', 'depth': '/rgbd/depth'}
    data = RosbagDataset('train', bags=[str(semidense_bag)], topics=topics,
                         method='semidense', holdout=0.0)
    # Frame 4 has no target within 20 ms; samples are named after the semi-dense topic.
    assert [int(s['name'].split('@')[1]) - START for s in data] == \
        [f * 100 * MS for f in (0, 1, 2, 3, 5)]
    sample = data[3]
    assert 'rgb' not in sample and sample['semidense_depth'].shape == DEPTH
    assert sample['semidense_depth'][2, 3] == pytest.approx(2.0 + 0.03 + 0.003)
    assert np.isnan(sample['semidense_depth'][[0, 1], [0, 3]]).all()
    assert sample['depth'][1, 4] == pytest.approx((1000 + 40 + 3) / 1000.0)
    # The method takes the recorded semi-dense depth as its input (no mask drawn): at the
    # model size of the depth camera, known = every 3rd pixel of every 2nd row but (0, 0)
    method = SemiDenseMethod(SemiDenseConfig(input_height=12, input_width=16,
                                             stem_channels=4, channels=8, dilations=(1, 2),
                                             use_intensity=False))
    batch = method.make_batch([sample], np.random.default_rng(0))
    known = np.zeros(DEPTH, bool)
    known[::2, ::3] = True
    known[0, 0] = False
    np.testing.assert_array_equal(batch['input'][0, 1].numpy() > 0.5, known)
    np.testing.assert_allclose(batch['input'][0, 0].numpy()[known],
                               sample['semidense_depth'][known], rtol=1e-6)
    np.testing.assert_allclose(batch['log_depth'][0, 0].numpy()[1, 4], np.log(1.043),
                               rtol=1e-4)
    # The intensity channel needs the image role.
    with_intensity = SemiDenseMethod(SemiDenseConfig(input_height=12, input_width=16,
                                                     stem_channels=4, channels=8,
                                                     dilations=(1, 2), use_intensity=True))
    with pytest.raises(KeyError, match=r"lacks \['rgb'\]"):
        with_intensity.make_batch([sample])
    with pytest.raises(BagDataError, match=r"lacks \['image or semidense'\]"):
        RosbagDataset('train', bags=[str(semidense_bag)], topics={'depth': '/rgbd/depth'},
                      method='semidense')


def test_semidense_trains_from_recorded_semidense_depth(semidense_bag, tmp_path):
    from training.config import load_config
    from training.train import run_training
    config_path = Path(__file__).resolve().parents[2] / 'training' / 'configs' / \
        'semidense_bag.yaml'
    config = load_config(config_path, [
        f'data.bags=[{semidense_bag}]', 'data.holdout=0.0', 'data.val_split=',
        'data.topics={semidense: /slam/depth, depth: /rgbd/depth}',
        'method.options.input_height=12', 'method.options.input_width=16',
        'method.options.stem_channels=4', 'method.options.channels=8',
        'method.options.dilations=[1, 2]', 'trainer.batch_size=2',
        'trainer.stage_steps.high_lr=2', 'trainer.stage_steps.low_lr=1',
        f'trainer.run_dir={tmp_path / "run"}', 'trainer.export_onnx=false',
        'trainer.val_every=0', 'trainer.threads=1', 'trainer.device=cpu'])
    result = run_training(config, progress=False)
    assert result.step == 3
    assert all(np.isfinite(v.numpy()).all()
               for v in result.method.state_dict()['networks']['network'].values())


def test_topic_arguments_set_and_drop_roles():
    from training.config import ConfigError
    from training.train import bag_overrides
    assert bag_overrides(['a', 'b'], ['semidense:=/slam/depth', 'image:=']) == [
        'data.source=rosbag', 'data.bags=["a", "b"]',
        'data.topics.semidense="/slam/depth"', 'data.topics.image=""']
    with pytest.raises(ConfigError, match="'image' is not of the form"):
        bag_overrides([], ['image'])
