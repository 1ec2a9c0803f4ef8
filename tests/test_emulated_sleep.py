"""The emulated backend's sleep (`serving.emulated.sleep_until`) on a fake event loop whose
timers behave as uvloop's on Linux here: they fire at the nearest whole ms, 0.35 ms late, and
the kernel lets the wait overrun by 0.1% of it. A plain timer overshoots a batch of 130.7 ms
by 0.78 ms and one of 4.86 s by 5.2 ms; the emulated worker's sleep ends within one yield of
its deadline, never before it."""

from __future__ import annotations

import asyncio

import pytest

from serving.emulated import sleep_until

WAKE_LATE_S = 0.00035
OVERRUN_SHARE = 0.001
YIELD_S = 0.00002  # one pass of the loop


class UvloopClock:
    """A clock and a `sleep` that advances it as uvloop's timers do (no real time passes)."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.timers_s: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        if delay_s > 0:
            self.timers_s.append(delay_s)
            self.now_s += round(delay_s * 1000) / 1000 + WAKE_LATE_S + OVERRUN_SHARE * delay_s
        else:
            self.now_s += YIELD_S


def run(deadline_from_now_s: float) -> tuple[float, UvloopClock]:
    clock = UvloopClock()
    deadline_s = clock() + deadline_from_now_s
    asyncio.run(sleep_until(deadline_s, clock=clock, sleep=clock.sleep))
    return clock() - deadline_s, clock


@pytest.mark.parametrize("took_s", [0.1300, 0.1307, 0.2340, 0.2354, 0.0021, 4.86, 90.0])
def test_the_sleep_ends_within_a_yield_of_its_deadline_never_before(took_s):
    late_s, clock = run(took_s)
    assert 0 <= late_s < YIELD_S + 1e-12
    assert clock.timers_s[0] < took_s and sum(clock.timers_s) < took_s
    assert len(clock.timers_s) <= 3  # the last ms or two by yields, not by many timers


def test_a_plain_timer_would_overshoot_by_the_ms_rounding_and_the_wake():
    clock = UvloopClock()
    asyncio.run(clock.sleep(0.1307))
    assert clock() - 1000.0 - 0.1307 == pytest.approx(0.0003 + WAKE_LATE_S + 0.0001307)


@pytest.mark.parametrize("took_s", [0.0, 0.001, -0.5])
def test_a_deadline_within_the_slack_or_past_sets_no_timer_but_yields(took_s):
    late_s, clock = run(took_s)
    assert clock.timers_s == []
    assert clock() > 1000.0  # yielded at least once, as the zero-latency batch always did
    assert late_s >= 0
