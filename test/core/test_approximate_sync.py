import pytest

from depth_nodes.core.sync import ApproximateTimeSync

MS = 1_000_000


def test_pairs_within_slop_in_input_order():
    sync = ApproximateTimeSync(2, slop_s=0.010)
    assert sync.add(0, 100 * MS, 'L1') is None
    assert sync.add(1, 105 * MS, 'R1') == ('L1', 'R1')
    assert sync.stats.matched == 1 and sync.stats.unmatched == 0


def test_too_far_apart_does_not_match_and_reports_the_spread():
    sync = ApproximateTimeSync(2, slop_s=0.010)
    sync.add(0, 100 * MS, 'L1')
    assert sync.add(1, 150 * MS, 'R1') is None
    assert sync.stats.last_spread_s == pytest.approx(0.050)


def test_nearest_partner_is_chosen_and_older_ones_are_dropped():
    sync = ApproximateTimeSync(2, slop_s=0.020)
    for stamp, name in ((100, 'L1'), (133, 'L2'), (166, 'L3')):
        sync.add(0, stamp * MS, name)
    assert sync.add(1, 135 * MS, 'R2') == ('L2', 'R2')
    assert sync.stats.unmatched == 1            # L1 can never be paired any more
    assert sync.add(1, 168 * MS, 'R3') == ('L3', 'R3')


def test_four_inputs_like_a_stereo_rig_with_camera_infos():
    sync = ApproximateTimeSync(4, slop_s=0.005)
    assert sync.add(0, 10 * MS, 'left') is None
    assert sync.add(1, 10 * MS, 'left_info') is None
    assert sync.add(2, 12 * MS, 'right') is None
    assert sync.add(3, 11 * MS, 'right_info') == ('left', 'left_info', 'right', 'right_info')


def test_time_going_backwards_resets_instead_of_stalling():
    sync = ApproximateTimeSync(2, slop_s=0.010)
    sync.add(0, 5000 * MS, 'L_end')               # end of the bag, no right partner
    sync.add(0, 100 * MS, 'L_loop')               # the bag loops: time jumps back
    assert sync.stats.resets == 1
    assert sync.add(1, 102 * MS, 'R_loop') == ('L_loop', 'R_loop')


def test_queues_are_bounded():
    sync = ApproximateTimeSync(2, slop_s=0.001, queue_size=3)
    for i in range(10):
        sync.add(0, i * 100 * MS, i)
    assert sync.stats.unmatched == 7


def test_invalid_arguments():
    with pytest.raises(ValueError):
        ApproximateTimeSync(1, 0.01)
    with pytest.raises(ValueError):
        ApproximateTimeSync(2, -0.01)
