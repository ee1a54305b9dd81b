"""The pricing whitepaper's configuration key values, and money kept as Decimal."""

from decimal import Decimal

import pytest

from evsed.ocpp.v16.configuration_keys import normalise
from evsed.ocpp.v16.pricing import _object, _tariff, languages, pricing_keys

KEYS = {spec.name: spec for spec in pricing_keys(["en", "nl"])}


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("DefaultPrice", '{"priceText": "0.15 $/kWh"}', True),
        ("DefaultPrice", '{"priceText": "x", "chargingPrice": {"kWhPrice": 0.15}}', True),
        ("DefaultPrice", '{"priceText": "x", "illegal": "content"}', False),
        ("DefaultPrice", '{"chargingPrice": {"kWhPrice": 0.15}}', False),
        ("DefaultPrice", '{"priceText": "x", "chargingPrice": {"kWhPrice": -1}}', False),
        ("DefaultPrice", "", True),  # no default price
        ("DefaultPriceText,nl", '{"priceText": "0,15 €/kWh"}', True),
        ("DefaultPriceText,nl", "[]", False),
        ("Language", "NL", True),
        ("Language", "fr", False),
        ("TimeOffset", "Z", True),
        ("TimeOffset", "+02:00", True),
        ("TimeOffset", "-0230", True),
        ("TimeOffset", "2:00", False),
        ("NextTimeOffsetTransitionDateTime", "2023-10-29T03:00:00Z", True),
        ("NextTimeOffsetTransitionDateTime", "InvalidDateTime", False),
    ],
)
def test_key_values(key: str, value: str, valid: bool) -> None:
    result = normalise(KEYS[key], value, connectors=1, max_items=1)
    assert (result is not None) is valid, result
    if key == "Language" and valid:
        assert result == "nl"


def test_money_is_decimal_exactly_as_sent() -> None:
    tariff = _tariff(_object('{"kWhPrice": 0.20, "hourPrice": 1.00, "flatFee": 0.05}'))
    assert tariff.per_kwh == Decimal("0.20") and str(tariff.per_kwh) == "0.20"
    assert str(tariff.flat_fee) == "0.05"
    assert all(isinstance(v, Decimal) for v in (tariff.per_kwh, tariff.per_hour, tariff.flat_fee))


def test_languages_from_the_config() -> None:
    assert languages("en, nl-BE") == ["en", "nl-BE"]
    assert languages("") == ["en"]
    with pytest.raises(ValueError):
        languages("english!")
