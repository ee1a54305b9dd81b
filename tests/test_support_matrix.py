"""The README's OCPP 1.6 support matrix is what the generator reads from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsed_devtools import support_matrix as matrix

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_holds_the_generated_matrix() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = readme.find(matrix.START), readme.find(matrix.END)
    assert 0 <= start < end, f"README.md has no {matrix.START} ... {matrix.END} block"
    current = readme[start : end + len(matrix.END) + 1]
    assert current == matrix.render(), (
        f"the OCPP support matrix in README.md is out of date; regenerate it with\n"
        f"    {matrix.COMMAND}"
    )


def _served(rows: list[matrix.MessageRow]) -> dict[str, str]:
    return {row.action: row.support for row in rows}


def test_a_served_action_is_supported_with_the_module_that_handles_it() -> None:
    incoming, _ = matrix.message_rows()
    remote_start = next(r for r in incoming if r.action == "RemoteStartTransaction")
    assert (remote_start.profile, remote_start.support) == ("Core", "yes")
    assert remote_start.modules == ("charge_point.py",)
    assert _served(incoming)["UpdateFirmware"] == "with `[ota] enabled`"


def test_what_is_served_comes_from_served_actions() -> None:
    """Another route map gives another matrix: nothing here is a list of what evsed serves."""

    def only_remote_start(*, firmware_updates: bool) -> frozenset[str]:
        actions = {"RemoteStartTransaction"} | ({"GetDiagnostics"} if firmware_updates else set())
        return frozenset(actions)

    incoming, _ = matrix.message_rows(only_remote_start)
    served = _served(incoming)
    assert served["RemoteStartTransaction"] == "yes"
    assert served["GetDiagnostics"] == "with `[ota] enabled`"
    assert served["Reset"] == "no"
    assert served["SignedUpdateFirmware"] == "no"


def test_a_new_flag_of_served_actions_must_be_named_before_the_matrix_is_made() -> None:
    def with_diagnostics(*, firmware_updates: bool, diagnostics: bool) -> frozenset[str]:
        return frozenset({"Reset"})

    with pytest.raises(SystemExit, match="diagnostics"):
        matrix.message_rows(with_diagnostics)


def test_what_is_sent_comes_from_the_calls_and_outbox_messages_in_the_code(
    tmp_path: Path,
) -> None:
    (tmp_path / "logs.py").write_text(
        "from ocpp.v16 import call as v16call\n"
        "def status():\n"
        "    return v16call.LogStatusNotification(status='Idle')\n"
    )
    (tmp_path / "diagnostics.py").write_text(
        "async def report(outbox, payload):\n"
        "    await outbox.enqueue_droppable('DiagnosticsStatusNotification', payload, '')\n"
        "MESSAGE = ('StartTransaction', {})\n"
        "NOT_A_MESSAGE = 'Heartbeat'  # a bare name sends nothing\n"
    )
    assert matrix.sent_actions(tmp_path) == {
        "LogStatusNotification": ("logs.py",),
        "DiagnosticsStatusNotification": ("diagnostics.py",),
        "StartTransaction": ("diagnostics.py",),
    }
    _, outgoing = matrix.message_rows(sources=tmp_path)
    assert _served(outgoing)["LogStatusNotification"] == "yes"
    assert _served(outgoing)["Authorize"] == "no"


def test_the_adapter_sends_authorize_and_the_outbox_transaction_messages() -> None:
    sent = matrix.sent_actions()
    assert sent["Authorize"] == ("calls.py",)
    assert "transactions.py" in sent["StartTransaction"]
    assert "transactions.py" in sent["StopTransaction"]


def test_every_ocpp_16_message_has_a_direction_and_a_profile() -> None:
    to_charger = frozenset().union(*matrix.CSMS_INITIATED.values())
    to_csms = frozenset().union(*matrix.CHARGER_INITIATED.values())
    assert to_charger | to_csms == matrix.spec_actions()
    assert to_charger & to_csms == {"DataTransfer"}  # OCPP 1.6 §4.3 and §5.6


def test_every_configuration_key_is_listed_with_its_access() -> None:
    rows = {row.key: row for row in matrix.key_rows()}
    assert (rows["HeartbeatInterval"].support, rows["HeartbeatInterval"].access) == ("yes", "RW")
    assert rows["NumberOfConnectors"].access == "R"
    assert rows["AuthorizationKey"].access == "W"
    assert rows["WebSocketPingInterval"].note == "RebootRequired"
    assert (rows["BlinkRepeat"].support, rows["BlinkRepeat"].access) == ("no", "")


def test_the_block_is_replaced_between_its_markers() -> None:
    text = f"intro\n{matrix.START}\nold\n{matrix.END}\nafter\n"
    block = f"{matrix.START}\nnew\n{matrix.END}\n"
    assert matrix.replace_block(text, block) == f"intro\n{block}after\n"
    with pytest.raises(ValueError):
        matrix.replace_block("no markers\n", block)
