"""The plugin's ``job`` control op: consent at the printer, OctoPrint's state, never a start
(the real OctoPrint walk is tests/e2e/test_relay_control.py)."""

from __future__ import annotations

import pytest
from octoprint_herald.job_control import handle_job


class RecordingPrinter:
    """OctoPrint's PrinterInterface as far as job control reads it, recording what was asked."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.calls: list[str] = []

    def get_state_id(self):
        return self.state

    def get_state_string(self):
        return self.state.title()

    def is_printing(self):
        return self.state == "PRINTING"

    def is_paused(self):
        return self.state == "PAUSED"

    def is_pausing(self):
        return self.state == "PAUSING"

    def pause_print(self, tags=None):
        self.calls.append("pause")

    def resume_print(self, tags=None):
        self.calls.append("resume")

    def cancel_print(self, tags=None):
        self.calls.append("cancel")


def _plugin(make_plugin, state: str, **relay):
    plugin = make_plugin(relay={"enabled": True, "allow_control": True, **relay})
    plugin._printer = RecordingPrinter(state)
    return plugin


@pytest.mark.parametrize("relay", [{"allow_control": False}, {"enabled": False}])
def test_refused_without_the_owners_consent_at_the_printer(make_plugin, relay):
    plugin = _plugin(make_plugin, "PRINTING", **relay)
    assert handle_job(plugin, {"action": "pause"})["error"] == "control_off"
    assert plugin._printer.calls == []


@pytest.mark.parametrize("action, state, allowed", [
    ("pause", "PRINTING", True), ("pause", "PAUSED", False), ("pause", "OPERATIONAL", False),
    ("resume", "PAUSED", True), ("resume", "PRINTING", False),
    ("cancel", "PRINTING", True), ("cancel", "PAUSED", True), ("cancel", "OPERATIONAL", False),
])
def test_each_action_only_in_a_state_that_allows_it(make_plugin, action, state, allowed):
    plugin = _plugin(make_plugin, state)
    answer = handle_job(plugin, {"action": action})
    if allowed:
        assert answer == {"action": action, "state": state.lower()} and plugin._printer.calls == [action]
    else:
        assert answer["error"] == "wrong_state" and state.title() in answer["message"]
        assert plugin._printer.calls == []


@pytest.mark.parametrize("args", [{"action": "start"}, {"action": "select"}, {}, None])
def test_never_a_start_or_anything_else(make_plugin, args):
    plugin = _plugin(make_plugin, "OPERATIONAL")
    assert handle_job(plugin, args)["error"] == "bad_action"
    assert plugin._printer.calls == []


def test_the_tunnel_gets_job_and_keeps_the_application_key_handlers(make_plugin):
    assert set(make_plugin()._relay_control_handlers()) == {"mint_api_key", "revoke_api_key", "job"}
