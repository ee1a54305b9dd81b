"""SampledValues built from a meter reading for the configured measurands."""

from evsed.ocpp.v16.metering import sampled_values
from hal.types import MeterReading

READING = MeterReading(
    energy_import_wh=12345.9,
    power_w=6900.0,
    current_a=(10.0, 11.0, 12.0),
    voltage_v=(229.0, 230.0, 231.0),
    frequency_hz=50.02,
    energy_export_wh=12.0,
)


def test_energy_is_whole_wh_truncated_like_meter_start_and_stop() -> None:
    (value,) = sampled_values(READING, ["Energy.Active.Import.Register"], "Sample.Periodic")
    assert value["value"] == "12345"
    assert value["unit"] == "Wh"
    assert value["context"] == "Sample.Periodic"


def test_per_phase_measurands_and_phase_suffixes() -> None:
    values = sampled_values(READING, ["Current.Import", "Voltage.L2"], "Sample.Clock")
    assert [(v["measurand"], v.get("phase"), v["value"]) for v in values] == [
        ("Current.Import", "L1", "10.00"),
        ("Current.Import", "L2", "11.00"),
        ("Current.Import", "L3", "12.00"),
        ("Voltage", "L2-N", "230.0"),
    ]


def test_single_phase_reports_only_l1() -> None:
    values = sampled_values(READING, ["Current.Import"], "Sample.Periodic", phases=1)
    assert [v["phase"] for v in values] == ["L1"]


def test_offered_current_frequency_and_export() -> None:
    values = sampled_values(
        READING,
        ["Current.Offered", "Frequency", "Energy.Active.Export.Register"],
        "Transaction.End",
        offered_a=16.0,
    )
    assert [v["value"] for v in values] == ["16.0", "50.02", "12"]
    assert "unit" not in values[1]  # Frequency has no 1.6 unit


def test_export_is_skipped_when_the_meter_has_none() -> None:
    reading = MeterReading(energy_import_wh=1.0)
    assert sampled_values(reading, ["Energy.Active.Export.Register"], "Sample.Periodic") == []
