"""tools/benchmark_semidense_node.py over real DDS: the node in its own process answers every
frame, and the benchmark checks that the first answer keeps the known input depths."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))


def test_benchmark_times_a_node_that_answers_every_frame(tmp_path):
    import benchmark_semidense_node as bench
    out = tmp_path / 'bench.json'
    assert bench.main(['--frames', '2', '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    node, alone = result['node_end_to_end_ms'], result['estimator_alone_ms']
    assert node['frames'] == alone['frames'] == 2
    assert 0 < node['p50'] <= node['max'] and 0 < alone['p50'] <= alone['max']


def test_benchmark_refuses_a_reply_that_lost_the_known_depths():
    import benchmark_semidense_node as bench
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from depth_nodes import ros_io
    depth, _ = bench.semidense_input(48, 64)
    header = Header(stamp=Time(sec=1), frame_id='camera')
    dense = np.where(np.isfinite(depth), depth, 3.0).astype(np.float32)
    bench.check_output(ros_io.image_to_cdr(dense, '32FC1', header), depth)    # accepted
    with pytest.raises(SystemExit, match='wrong depth'):
        bench.check_output(ros_io.image_to_cdr(dense * 1.01, '32FC1', header), depth)
