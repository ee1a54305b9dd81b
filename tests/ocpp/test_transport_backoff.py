"""The reconnect delays: bounded, growing, and spread from the first retry on, so that a fleet
that lost its CSMS together does not come back together."""

import random
import statistics

from evsed.ocpp.transport import CsmsLink


def _link(seed: int, minimum: float = 2.0, maximum: float = 300.0) -> CsmsLink:
    return CsmsLink(
        "ws://127.0.0.1:9/ocpp/CP01",
        subprotocol="ocpp1.6",
        reconnect_min_s=minimum,
        reconnect_max_s=maximum,
        ping_interval_s=0,
        rng=random.Random(seed),
    )


def test_every_delay_stays_between_the_minimum_and_the_maximum() -> None:
    link = _link(1)
    for attempt in range(1, 40):
        for _ in range(50):
            assert 2.0 <= link.backoff(attempt) <= 300.0


def test_the_first_retry_of_a_fleet_is_spread_over_a_window() -> None:
    firsts = [_link(seed).backoff(1) for seed in range(100)]
    assert min(firsts) >= 2.0 and max(firsts) <= 4.0
    # Not all at once: a hundred chargers land over the whole window, none crowded.
    assert max(firsts) - min(firsts) > 1.5
    buckets = [int((d - 2.0) / 0.2) for d in firsts]  # ten 0.2 s slices of the window
    assert max(buckets.count(b) for b in set(buckets)) <= 25


def test_the_cap_doubles_until_the_maximum() -> None:
    link = _link(7)
    caps = [max(link.backoff(attempt) for _ in range(400)) for attempt in range(1, 10)]
    assert caps[0] <= 4.0 < caps[1] <= 8.0 < caps[2] <= 16.0
    assert all(cap <= 300.0 for cap in caps)
    late = [link.backoff(12) for _ in range(400)]
    assert statistics.mean(late) > 100.0  # spread over [2, 300]
