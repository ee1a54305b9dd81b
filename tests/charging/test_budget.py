"""The supply shared among connectors, and what the site fuse leaves: table-driven."""

import pytest

from evsed.charging.budget import Demand, share_supply, site_allowance


def d(cid: int, wants: bool = True, cap: float = 32.0, order: int = 0) -> Demand:
    return Demand(cid, wants, cap, order)


@pytest.mark.parametrize(
    ("supply", "demands", "shares"),
    [
        # One session takes what it may, up to the supply.
        (32.0, [d(1), d(2, wants=False)], {1: 32.0, 2: 0.0}),
        (20.0, [d(1, cap=16.0), d(2, wants=False)], {1: 16.0, 2: 0.0}),
        # Two sessions split it fairly.
        (32.0, [d(1), d(2)], {1: 16.0, 2: 16.0}),
        (25.0, [d(1), d(2)], {1: 12.5, 2: 12.5}),
        # A connector capped below its share leaves the rest to the other.
        (32.0, [d(1, cap=10.0), d(2)], {1: 10.0, 2: 22.0}),
        (40.0, [d(1, cap=16.0), d(2, cap=16.0)], {1: 16.0, 2: 16.0}),
        # Not enough for 6 A each: the earlier session is served, the later waits.
        (10.0, [d(1, order=2), d(2, order=1)], {1: 0.0, 2: 10.0}),
        (12.0, [d(1), d(2)], {1: 6.0, 2: 6.0}),
        (17.9, [d(1, order=1), d(2, order=2), d(3, order=3)], {1: 8.9, 2: 9.0, 3: 0.0}),
        # Shares are rounded down to 0.1 A (what is left goes on): the sum stays within it.
        (20.0, [d(1), d(2), d(3)], {1: 6.6, 2: 6.7, 3: 6.7}),
        # A connector whose cap is below 6 A cannot charge at all: it takes nothing.
        (20.0, [d(1, cap=5.0), d(2)], {1: 0.0, 2: 20.0}),
        (5.0, [d(1)], {1: 0.0}),
        (16.0, [], {}),
    ],
)
def test_share_supply(supply: float, demands: list[Demand], shares: dict[int, float]) -> None:
    got = share_supply(supply, demands)
    assert got == shares
    assert sum(got.values()) <= supply + 1e-9


def test_shares_never_exceed_the_supply_or_a_cap() -> None:
    import random

    rng = random.Random(61851)
    for _ in range(2000):
        supply = rng.choice([6.0, 10.0, 16.0, 20.0, 25.0, 32.0, 63.0, rng.uniform(6, 80)])
        demands = [
            d(
                i,
                wants=rng.random() < 0.8,
                cap=rng.choice([6.0, 10.0, 13.0, 16.0, 32.0]),
                order=rng.randrange(5),
            )
            for i in range(1, rng.randint(1, 4) + 1)
        ]
        got = share_supply(supply, demands)
        assert sum(got.values()) <= supply + 1e-9
        for demand in demands:
            share = got[demand.connector_id]
            assert share == 0.0 or 6.0 <= share <= demand.cap_a
            if not demand.wants:
                assert share == 0.0


@pytest.mark.parametrize(
    ("fuse", "site", "own", "expected"),
    [
        # Nothing else on: the whole fuse for the charger.
        (25.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 25.0),
        # The charger's own 16 A is not another load.
        (25.0, (16.0, 16.0, 16.0), (16.0, 16.0, 16.0), 25.0),
        # An oven on L2: the most loaded phase sets the allowance.
        (25.0, (18.0, 30.0, 16.0), (16.0, 16.0, 16.0), 11.0),
        # Other loads above the fuse: nothing for the charger (never negative).
        (25.0, (40.0, 40.0, 40.0), (10.0, 10.0, 10.0), 0.0),
        # A meter that reads a little below the charger's own meters: no negative load.
        (25.0, (15.5, 15.5, 15.5), (16.0, 16.0, 16.0), 25.0),
        # A single-phase site meter (L2 and L3 read 0).
        (32.0, (20.0, 0.0, 0.0), (0.0, 0.0, 0.0), 12.0),
    ],
)
def test_site_allowance(
    fuse: float,
    site: tuple[float, float, float],
    own: tuple[float, float, float],
    expected: float,
) -> None:
    assert site_allowance(fuse, site, own) == pytest.approx(expected)
