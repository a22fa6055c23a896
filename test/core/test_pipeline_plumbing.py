import pytest

from depth_nodes.core.pipeline import LatencyWindow, RateMeter, ThrottledReporter


def test_rate_meter():
    meter = RateMeter(window_s=10.0)
    for i in range(11):
        meter.tick(100.0 + i * 0.5)  # 2 Hz
    assert meter.rate(now=105.0) == pytest.approx(2.0)
    assert meter.rate(now=200.0) == 0.0


def test_latency_percentiles():
    window = LatencyWindow(size=100)
    for ms in range(1, 101):
        window.add(ms / 1000)
    p50, p95 = window.percentiles(50, 95)
    assert p50 == pytest.approx(0.0505) and p95 == pytest.approx(0.09505)


def test_throttled_reporter_counts_what_it_does_not_print():
    now = [0.0]
    lines = []
    reporter = ThrottledReporter(lines.append, period_s=5.0, clock=lambda: now[0])
    assert reporter.report('encoding', 'bad encoding')
    for _ in range(3):
        assert not reporter.report('encoding', 'bad encoding')
    assert reporter.report('step', 'bad step')      # another kind is not throttled by the first
    now[0] = 6.0
    assert reporter.report('encoding', 'bad encoding')
    assert lines == ['bad encoding', 'bad step', 'bad encoding (3 more since the last report)']
    assert reporter.total == 6
