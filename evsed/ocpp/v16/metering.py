"""SampledValue lists (OCPP 1.6 §7.45) for the measurands a configuration key asks for.

The keys MeterValuesSampledData, MeterValuesAlignedData, StopTxnSampledData and
StopTxnAlignedData (§9.1) name measurands; this module turns a meter reading into the matching
SampledValues. Measurands the hardware cannot provide are refused when the key is changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hal.types import MeterReading

SUPPORTED_MEASURANDS = frozenset(
    {
        "Energy.Active.Import.Register",
        "Energy.Active.Export.Register",
        "Power.Active.Import",
        "Current.Import",
        "Current.Offered",
        "Voltage",
        "Frequency",
    }
)


def sampled_values(
    reading: MeterReading,
    measurands: list[str],
    context: str,
    *,
    offered_a: float = 0.0,
    phases: int = 3,
) -> list[dict[str, Any]]:
    """SampledValues for ``measurands`` (in the order given) from one reading."""
    values: list[dict[str, Any]] = []
    for entry in measurands:
        measurand, only = _split_phase(entry)
        wanted = [(i, p) for i, p in enumerate(("L1", "L2", "L3")[:phases]) if only in (None, p)]
        match measurand:
            case "Energy.Active.Import.Register":
                # Whole Wh, truncated: the same figure as meterStart/meterStop.
                values.append(_value(str(int(reading.energy_import_wh)), context, measurand, "Wh"))
            case "Energy.Active.Export.Register" if reading.energy_export_wh is not None:
                values.append(_value(str(int(reading.energy_export_wh)), context, measurand, "Wh"))
            case "Power.Active.Import":
                values.append(_value(f"{max(reading.power_w, 0.0):.1f}", context, measurand, "W"))
            case "Current.Import":
                for i, phase in wanted:
                    amps = reading.current_a[i]
                    values.append(_value(f"{amps:.2f}", context, measurand, "A", phase))
            case "Voltage":
                for i, phase in wanted:
                    volts = reading.voltage_v[i]
                    values.append(_value(f"{volts:.1f}", context, measurand, "V", f"{phase}-N"))
            case "Current.Offered":
                values.append(_value(f"{offered_a:.1f}", context, measurand, "A"))
            case "Frequency":
                # Frequency has no unit in the 1.6 UnitOfMeasure enum: none is sent.
                values.append(_value(f"{reading.frequency_hz:.2f}", context, measurand, None))
    return values


class MeterValueBuilder:
    """The one place a MeterValue (§7.35) is built from a reading: transaction samples,
    clock-aligned samples without a transaction and triggered ones all go through it, so every
    path reports the charger's phases and nothing else."""

    def __init__(self, measurands: Callable[[str], list[str]], phases: Mapping[int, int]) -> None:
        """``measurands``: the members of a measurand key (§9.1), read when needed;
        ``phases``: how many phases each connector has."""
        self._measurands = measurands
        self._phases = dict(phases)

    def build(
        self,
        connector_id: int,
        reading: MeterReading | None,
        key: str,
        context: str,
        timestamp: str,
        *,
        offered_a: float = 0.0,
    ) -> dict[str, Any] | None:
        """``{"timestamp", "sampled_value"}`` for the measurands of ``key``; None when there is
        no reading or nothing to report."""
        measurands = self._measurands(key)
        if reading is None or not measurands:
            return None
        values = sampled_values(
            reading,
            measurands,
            context,
            offered_a=offered_a,
            phases=self._phases.get(connector_id, 3),
        )
        return {"timestamp": timestamp, "sampled_value": values} if values else None


def _split_phase(entry: str) -> tuple[str, str | None]:
    """ "Voltage.L1" -> ("Voltage", "L1"): a phase suffix narrows a per-phase measurand."""
    head, _, tail = entry.rpartition(".")
    if tail in ("L1", "L2", "L3") and head:
        return head, tail
    return entry, None


def _value(
    value: str, context: str, measurand: str, unit: str | None, phase: str | None = None
) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "value": value,
        "context": context,
        "format": "Raw",
        "measurand": measurand,
        "location": "Outlet",
    }
    if unit:
        sample["unit"] = unit
    if phase:
        sample["phase"] = phase
    return sample
