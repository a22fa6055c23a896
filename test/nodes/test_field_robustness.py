"""Field faults through ONE running node: every kind of bad input is dropped with a throttled
warning and counted in diagnostics, and the next good frame is published; the model loads
once; a broken model swap is reported while the old model keeps running.

The malformed messages come from fixtures/malformed.py; each node adds its test here with the
cases that apply to its inputs and the rejection kinds it reports.
"""
import collections
import functools
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from fixtures import malformed
from fixtures.models import write_affine_model
from fixtures.ros_harness import RELIABLE, overrides, ros_graph
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.nodes import depth_node
from depth_nodes.nodes.dof_node import DofNode
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.nodes.semidense_depth_node import SemiDenseDepthNode
from depth_nodes.nodes.stereo_depth_node import StereoDepthNode
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-3, max_depth=1e3)
CAM = CameraIntrinsics(64, 48, fx=60.0, fy=62.0, cx=31.5, cy=23.5)
T0 = 1_700_000_100 * 10**9


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('models') / 'affine.onnx', SPEC)


def mono_node(model_path, **params):
    return functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model_path), backend='onnxruntime', **params))


class Outputs:
    """Raw output images (depth/image) and /diagnostics values of the node under test."""

    def __init__(self, probe, topic='depth/image'):
        self._lock = threading.Lock()
        self.depth: list[bytes] = []
        self.diagnostics: list[dict] = []
        probe.node.create_subscription(Image, topic, self._on_depth, RELIABLE, raw=True)
        probe.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)

    def _on_depth(self, raw):
        with self._lock:
            self.depth.append(raw)

    def _on_diag(self, msg):
        with self._lock:
            status = msg.status[0]
            self.diagnostics.append({'level': status.level, 'message': status.message,
                                     **{kv.key: kv.value for kv in status.values}})

    def stamps(self):
        with self._lock:
            msgs = [ros_io.image_from_cdr(raw) for raw in self.depth]
        return [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in msgs]


def recording_emits(reporter):
    """Wrap a ThrottledReporter's output so the test sees what reached the log."""
    lines, emit = [], reporter._emit
    reporter._emit = lambda text: (lines.append(text), emit(text))
    return lines


def test_mono_depth_node_survives_every_kind_of_bad_input(model_path):
    good = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with ros_graph(mono_node(model_path)) as (probe, (node,)):
        out = Outputs(probe)
        pubs = {'image': probe.publisher(Image, 'image'),
                'camera_info': probe.publisher(CameraInfo, 'camera_info')}
        assert all(probe.wait_for_subscribers(p) for p in pubs.values())
        warnings, jump_warnings = recording_emits(node.reporter), \
            recording_emits(node.time_jumps)
        pubs['camera_info'].publish(malformed.camera_info_cdr(CAM, T0))
        time.sleep(0.2)
        pubs['image'].publish(malformed.image_cdr(good, 'rgb8', T0))
        assert probe.wait_for(lambda: len(out.depth) == 1)

        cases = malformed.image_cases('image', good, 'rgb8', T0 + 10**8) \
            + [malformed.time_backwards_case('image', good, 'rgb8', T0, back_s=30.0)] \
            + malformed.camera_info_cases('camera_info', 'image', CAM, good, 'rgb8',
                                          T0 + 2 * 10**8)
        assert len(cases) == 10
        seen = malformed.drive_cases(node, pubs, cases, out.depth)
        assert seen == {case.name: case.rejects_as for case in cases}

        pubs['camera_info'].publish(malformed.camera_info_cdr(CAM, T0 + 3 * 10**8))
        time.sleep(0.2)
        pubs['image'].publish(malformed.image_cdr(good, 'rgb8', T0 + 3 * 10**8))
        assert probe.wait_for(lambda: len(out.depth) == 3)
        # Published: the first frame, the good frame from 30 s earlier (a bag loop), the last.
        assert out.stamps() == [T0, T0 - 30 * 10**9, T0 + 3 * 10**8]
        expected = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime')).estimate(
            good, 'rgb8', CAM, depth_range=(1e-3, 1e3)).depth
        np.testing.assert_array_equal(
            ros_io.image_to_array(ros_io.image_from_cdr(out.depth[-1])), expected)

        rejected = collections.Counter(c.rejects_as for c in cases if c.rejects_as)
        assert node.reporter.counts == rejected
        assert rejected['encoding'] == 2                   # wrong encoding and NaN/Inf floats
        # Throttled: one log line per kind within the 5 s period (the 2nd 'encoding' waits).
        assert len(warnings) == len(rejected) == 8
        assert all(line.startswith('dropped input: ') for line in warnings)
        assert any('bayer_rggb8' in line for line in warnings)
        assert jump_warnings == ['input time went back by 30.000 s (bag loop or driver '
                                 'restart?): state reset']

        def diagnostics_agree():
            d = out.diagnostics[-1] if out.diagnostics else {}
            return d.get('frames rejected (bad input)') == str(sum(rejected.values()))
        assert probe.wait_for(diagnostics_agree, timeout=5.0)
        d = out.diagnostics[-1]
        assert {k: d[f'rejected: {k}'] for k in rejected} == \
            {k: str(n) for k, n in rejected.items()}
        assert d['time jumps back (state reset)'] == '1'
        assert d['level'] == DiagnosticStatus.OK


def test_model_loads_once_at_start_never_per_frame(model_path, monkeypatch):
    loads = []
    real_open = depth_node.open_model
    monkeypatch.setattr(depth_node, 'open_model',
                        lambda *a, **k: (loads.append(a[0]), real_open(*a, **k))[1])
    image = np.zeros((48, 64, 3), np.uint8)
    with ros_graph(mono_node(model_path)) as (probe, (node,)):
        out = Outputs(probe)
        pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(pub)
        for i in range(5):
            pub.publish(malformed.image_cdr(image, 'rgb8', T0 + i * 10**8))
            assert probe.wait_for(lambda: len(out.depth) == i + 1)
        assert loads == [str(model_path)]


def test_broken_model_swap_keeps_the_old_model_and_reports_it(model_path, tmp_path):
    broken = tmp_path / 'truncated.onnx'
    broken.write_bytes(model_path.read_bytes()[:200])
    image = np.zeros((48, 64, 3), np.uint8)
    with ros_graph(mono_node(model_path)) as (probe, (node,)):
        out = Outputs(probe)
        pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(pub)
        result = node.set_parameters([Parameter('model', value=str(broken))])[0]
        assert not result.successful and str(broken) in result.reason
        pub.publish(malformed.image_cdr(image, 'rgb8', T0))
        assert probe.wait_for(lambda: len(out.depth) == 1)      # the old model still runs
        assert probe.wait_for(lambda: out.diagnostics and str(broken) in
                              out.diagnostics[-1]['message'], timeout=5.0)
        d = out.diagnostics[-1]
        assert d['level'] == DiagnosticStatus.WARN
        assert d['model'] == str(model_path)


# -- semidense_depth_node ------------------------------------------------------------------
def semidense_model(tmp_path_factory):
    """depth/s - 0.5 mask + 0.5 per pixel (s: the frame's largest known depth), as in
    test_semidense_depth_node.py: a known pixel comes out as its own depth."""
    spec = ModelSpec(method='semidense', input_kind='semidense', input_names=('image',),
                     input_height=48, input_width=64, input_channels=2, mean=(0.0, 0.0),
                     std=(1.0, 1.0), output_name='depth', output_kind='metric_depth',
                     min_depth=0.01, max_depth=100.0, extras={'scale_percentile': 100.0})
    return write_affine_model(tmp_path_factory.mktemp('semidense') / 'two.onnx', spec,
                              weights=(1.0, -0.5), bias=0.5)


@pytest.fixture(scope='module')
def semidense_path(tmp_path_factory):
    return semidense_model(tmp_path_factory)


def semidense_node(model, **params):
    return functools.partial(SemiDenseDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime', **params))


def test_semidense_depth_node_survives_every_kind_of_bad_depth_input(semidense_path):
    sparse = np.full((48, 64), np.nan, np.float32)
    sparse[10, 20], sparse[30, 40] = 2.0, 4.0
    with ros_graph(semidense_node(semidense_path)) as (probe, (node,)):
        out = Outputs(probe)
        pubs = {'semidense/depth': probe.publisher(Image, 'semidense/depth'),
                'camera_info': probe.publisher(CameraInfo, 'camera_info')}
        assert all(probe.wait_for_subscribers(p) for p in pubs.values())
        pubs['camera_info'].publish(malformed.camera_info_cdr(CAM, T0))
        time.sleep(0.2)
        pubs['semidense/depth'].publish(malformed.image_cdr(sparse, '32FC1', T0))
        assert probe.wait_for(lambda: len(out.depth) == 1)

        # NaN/Inf are 'unknown' in a REP 118 depth image: an all-NaN/Inf map has no depth.
        cases = malformed.image_cases('semidense/depth', sparse, '32FC1', T0 + 10**8,
                                      float_image_rejects_as='no_depth') \
            + malformed.semidense_cases('semidense/depth', (48, 64), T0 + 10**8,
                                        all_unknown_rejects_as='no_depth') \
            + [malformed.time_backwards_case('semidense/depth', sparse, '32FC1', T0)] \
            + malformed.camera_info_cases('camera_info', 'semidense/depth', CAM, sparse,
                                          '32FC1', T0 + 2 * 10**8)
        seen = malformed.drive_cases(node, pubs, cases, out.depth)
        assert seen == {case.name: case.rejects_as for case in cases}

        pubs['camera_info'].publish(malformed.camera_info_cdr(CAM, T0 + 3 * 10**8))
        time.sleep(0.2)
        pubs['semidense/depth'].publish(malformed.image_cdr(sparse, '32FC1', T0 + 3 * 10**8))
        assert probe.wait_for(lambda: len(out.depth) == 3)
        assert out.stamps() == [T0, T0 - 30 * 10**9, T0 + 3 * 10**8]
        dense = ros_io.image_to_array(ros_io.image_from_cdr(out.depth[-1]))
        # Known pixels come back as given; unknown ones as 0.5 * s = 2 m (s = 4 m).
        assert (dense[10, 20], dense[30, 40]) == (2.0, 4.0)
        assert dense[0, 0] == pytest.approx(2.0)
        rejected = collections.Counter(c.rejects_as for c in cases if c.rejects_as)
        assert node.reporter.counts == rejected and node.time_jumps.total == 1
        assert probe.wait_for(lambda: out.diagnostics and out.diagnostics[-1].get(
            'rejected: no_depth') == '2', timeout=5.0)


def test_semidense_point_cloud_input_drops_clouds_without_xyz(semidense_path):
    points = np.array([[0.0, 0.0, 2.0], [0.5, 0.2, 4.0]], np.float32)  # in the camera frame
    with ros_graph(semidense_node(semidense_path, input='points')) as (probe, (node,)):
        out = Outputs(probe)
        pubs = {'semidense/points': probe.publisher(PointCloud2, 'semidense/points'),
                'camera_info': probe.publisher(CameraInfo, 'camera_info')}
        assert all(probe.wait_for_subscribers(p) for p in pubs.values())
        cloud = malformed.pointcloud_cdr(points, T0)
        cases = [malformed.Malformed('points_before_camera_info',
                                     (('semidense/points', cloud),), 'camera_info')]
        seen = malformed.drive_cases(node, pubs, cases, out.depth)
        pubs['camera_info'].publish(malformed.camera_info_cdr(CAM, T0))
        time.sleep(0.2)
        cases = malformed.semidense_cases('semidense/depth', (48, 64), T0,
                                          all_unknown_rejects_as='no_depth',
                                          points_name='semidense/points')[1:]
        store = ros_io._typestore()
        short = store.deserialize_cdr(cloud, 'sensor_msgs/msg/PointCloud2')
        short.data = short.data[:10]                                   # truncated points
        cases.append(malformed.Malformed('truncated_cloud', (('semidense/points', bytes(
            store.serialize_cdr(short, 'sensor_msgs/msg/PointCloud2'))),), 'data_size'))
        seen.update(malformed.drive_cases(node, pubs, cases, out.depth))
        assert seen == {'points_before_camera_info': 'camera_info',
                        'pointcloud_without_xyz': 'point_fields',
                        'truncated_cloud': 'data_size'}
        pubs['semidense/points'].publish(malformed.pointcloud_cdr(points, T0 + 10**8))
        assert probe.wait_for(lambda: len(out.depth) == 1)
        dense = ros_io.image_to_array(ros_io.image_from_cdr(out.depth[0]))
        # (0, 0, 2) projects onto the principal point (31.5, 23.5): pixel (23 or 24, 31 or 32).
        assert np.nanmax(dense) == pytest.approx(4.0) and 2.0 in dense


# -- dof_node (not a DepthNodeBase: its own reporter, a synchroniser, no model) ---------------
def test_dof_node_survives_bad_images_unsynchronised_pairs_and_a_bag_loop():
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = np.full((48, 64), 2.0, np.float32)          # all in focus: the output is the input
    with ros_graph(functools.partial(DofNode)) as (probe, (node,)):
        out = Outputs(probe, 'dof/image')
        pubs = {'image': probe.publisher(Image, 'image'),
                'depth/image': probe.publisher(Image, 'depth/image')}
        assert all(probe.wait_for_subscribers(p) for p in pubs.values())

        def pair(case, stamp):
            """The bad image with a good depth of its stamp, so the pair reaches the renderer
            (an undecodable message is refused before pairing: no partner)."""
            if case.rejects_as == 'cdr':
                return case
            partner = ('depth/image', malformed.image_cdr(depth, '32FC1', stamp))
            return malformed.Malformed(case.name, case.messages + (partner,), case.rejects_as)

        stamp = T0 + 10**8
        cases = [pair(c, stamp) for c in malformed.image_cases(
            'image', image, 'rgb8', stamp, float_image_rejects_as='image_encoding')]
        seen = malformed.drive_cases(node, pubs, cases, out.depth)
        assert seen == {case.name: case.rejects_as for case in cases}
        assert out.depth == []

        unmatched = node.sync.stats.unmatched
        # An image and a depth 1 s apart (sync_slop 0.05 s): neither finds a partner.
        unsynchronised = malformed.Malformed('unsynchronised_pair', (
            ('image', malformed.image_cdr(image, 'rgb8', T0 + 2 * 10**8)),
            ('depth/image', malformed.image_cdr(depth, '32FC1', T0 + 12 * 10**8))), None)
        for name, payload in unsynchronised.messages:
            pubs[name].publish(payload)
            time.sleep(0.1)
        time.sleep(0.3)
        assert out.depth == []                          # never paired, never rendered

        for t in (T0 + 20 * 10**8, T0 - 30 * 10**9):     # a good pair, then a bag loop
            pubs['depth/image'].publish(malformed.image_cdr(depth, '32FC1', t))
            time.sleep(0.1)
            pubs['image'].publish(malformed.image_cdr(image, 'rgb8', t))
            assert probe.wait_for(lambda: out.stamps()[-1:] == [t], timeout=5.0)
        # The good pair's match discarded the two partnerless messages, counted unmatched
        # (diagnostics 'inputs unmatched'); the loop's jump back reset the synchroniser.
        assert out.stamps() == [T0 + 20 * 10**8, T0 - 30 * 10**9]
        assert node.sync.stats.unmatched == unmatched + 2
        assert node.time_jumps.total == node.sync.stats.resets >= 1    # warned, in diagnostics
        np.testing.assert_array_equal(
            ros_io.image_to_array(ros_io.image_from_cdr(out.depth[-1])), image)
        rejected = collections.Counter(c.rejects_as for c in cases)
        assert node.reporter.counts == rejected


# -- stereo_depth_node ---------------------------------------------------------------------
def test_stereo_depth_node_survives_bad_pairs_of_every_kind():
    """SGBM (no model) on a shifted random pair: bad left images (each with a good right
    partner), mismatched sizes, an unsynchronised pair, bad camera_info, a bag loop."""
    from dataclasses import replace
    rng = np.random.default_rng(2)
    right = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    left = np.roll(right, 4, axis=1)                    # 4 px disparity everywhere
    right_cam = replace(CAM, tx=-CAM.fx * 0.5)          # B = 0.5 m
    factory = functools.partial(StereoDepthNode, parameter_overrides=overrides(
        model='', sgbm__num_disparities=16))
    with ros_graph(factory) as (probe, (node,)):
        out = Outputs(probe)
        pubs = {name: probe.publisher(Image if 'image' in name else CameraInfo, name)
                for name in ('left/image_rect', 'right/image_rect', 'left/camera_info',
                             'right/camera_info')}
        assert all(probe.wait_for_subscribers(p) for p in pubs.values())

        def infos(stamp):
            pubs['left/camera_info'].publish(malformed.camera_info_cdr(CAM, stamp))
            pubs['right/camera_info'].publish(malformed.camera_info_cdr(right_cam, stamp))
            time.sleep(0.2)

        def pair(stamp, left_image=left):
            return (('left/image_rect', malformed.image_cdr(left_image, 'rgb8', stamp)),
                    ('right/image_rect', malformed.image_cdr(right, 'rgb8', stamp)))

        def with_right(case, stamp):
            if case.rejects_as == 'cdr':            # refused before pairing: no partner
                return case
            return malformed.Malformed(case.name, case.messages + pair(stamp)[1:],
                                       case.rejects_as)

        infos(T0)
        for name, payload in pair(T0):
            pubs[name].publish(payload)
        assert probe.wait_for(lambda: len(out.depth) == 1)
        first = ros_io.image_to_array(ros_io.image_from_cdr(out.depth[0]))
        # Z = fx B / d = 60 * 0.5 / 4 = 7.5 m where SGBM matched.
        assert np.nanmedian(first) == pytest.approx(7.5, rel=0.02)

        t = T0 + 10**8
        cases = [with_right(c, t) for c in malformed.image_cases(
            'left/image_rect', left, 'rgb8', t)]
        cases += malformed.stereo_cases('left/image_rect', 'right/image_rect', left, right,
                                        'rgb8', T0 + 2 * 10**8,
                                        size_mismatch_rejects_as='stereo_size',
                                        unsynchronised_rejects_as='unsynchronised')
        # An unsynchronised pair is dropped (and reported) when the next pair matches.
        unsync = cases[-1]
        cases[-1] = malformed.Malformed(unsync.name, unsync.messages + pair(T0 + 30 * 10**8),
                                        unsync.rejects_as)
        cases.append(malformed.Malformed('time_backwards', pair(T0 - 30 * 10**9), None))
        bad_info = malformed.camera_info_cdr(CAM, T0, k=[0.0] * 9, p=[0.0] * 12)
        cases.append(malformed.Malformed('camera_info_zero_focal_length', (
            ('left/camera_info', bad_info),) + pair(T0 - 29 * 10**9), 'camera_info'))
        seen = malformed.drive_cases(node, pubs, cases, out.depth)
        assert seen == {case.name: case.rejects_as for case in cases}

        infos(T0)
        for name, payload in pair(T0 - 28 * 10**9):
            pubs[name].publish(payload)
        assert probe.wait_for(lambda: out.stamps()[-1:] == [T0 - 28 * 10**9])
        # Published: the first pair, the pair after the unsynchronised one, the loop, the last.
        assert out.stamps() == [T0, T0 + 30 * 10**8, T0 - 30 * 10**9, T0 - 28 * 10**9]
        np.testing.assert_array_equal(
            ros_io.image_to_array(ros_io.image_from_cdr(out.depth[-1])), first)
        assert node.time_jumps.total == 1 and node.sync.stats.resets >= 1
        rejected = collections.Counter(c.rejects_as for c in cases if c.rejects_as)
        assert node.reporter.counts == rejected
