"""The owner's consent to the relay in the plugin's settings: defaults, migration, saving, the status push."""

from __future__ import annotations

import pytest
from octoprint_herald import HeraldPlugin
from octoprint_herald.relay_consent import RELAY_DEFAULTS, relay_settings


def test_relay_is_off_by_default_with_the_exact_names():
    defaults = HeraldPlugin().get_settings_defaults()
    assert defaults["relay"] == {"enabled": False, "mint_api_keys": False, "api_key_user": "", "allow_control": False}
    assert defaults["relay"] is not RELAY_DEFAULTS  # a copy: OctoPrint may change it in place


@pytest.mark.parametrize("stored, expected", [
    (None, RELAY_DEFAULTS),
    ("yes", RELAY_DEFAULTS),
    ({"enabled": "true", "mint_api_keys": 1}, RELAY_DEFAULTS),  # only a real true is a yes
    ({"enabled": True, "mint_api_keys": True, "api_key_user": " apps "},
     {"enabled": True, "mint_api_keys": True, "api_key_user": "apps", "allow_control": False}),
    ({"enabled": True, "api_key_user": 5, "allow_control": True},
     {"enabled": True, "mint_api_keys": False, "api_key_user": "", "allow_control": True}),
    ({"enabled": True, "allow_control": "yes"},
     {"enabled": True, "mint_api_keys": False, "api_key_user": "", "allow_control": False}),
])
def test_relay_settings_read_anything_but_a_clear_yes_as_off(stored, expected):
    assert relay_settings(stored) == expected


def test_migration_to_version_2_cleans_the_relay_settings(make_plugin):
    plugin = make_plugin(relay={"enabled": "on"})
    plugin.on_settings_migrate(2, 1)
    assert plugin._settings.get(["relay"]) == RELAY_DEFAULTS
    kept = make_plugin(relay={"enabled": True, "mint_api_keys": False, "api_key_user": "apps"})
    kept.on_settings_migrate(2, 1)
    assert kept._settings.get(["relay"]) == {"enabled": True, "mint_api_keys": False, "api_key_user": "apps",
                                             "allow_control": False}


def test_saving_merges_the_relay_part_and_cleans_it(make_plugin, monkeypatch):
    plugin = make_plugin(relay={"enabled": True, "mint_api_keys": True, "api_key_user": "apps"})
    saved = {}
    monkeypatch.setattr("octoprint.plugin.SettingsPlugin.on_settings_save",
                        lambda self, data: saved.update(data) or data)
    plugin.on_settings_save({"relay": {"mint_api_keys": "yes"}})
    assert saved == {"relay": {"enabled": True, "mint_api_keys": False, "api_key_user": "apps",
                               "allow_control": False}}


def test_the_status_push_carries_the_consent(make_plugin):
    off = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k")
    assert off._current_status()["relay"] == {"enabled": False, "mint_api_keys": False, "allow_control": False}
    # minting without the relay itself means nothing: reported as off
    half = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k",
                       relay={"enabled": False, "mint_api_keys": True, "api_key_user": "admin", "allow_control": True})
    assert half._current_status()["relay"] == {"enabled": False, "mint_api_keys": False, "allow_control": False}
    on = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k",
                     relay={"enabled": True, "mint_api_keys": True, "api_key_user": "admin"})
    assert on._current_status()["relay"] == {"enabled": True, "mint_api_keys": True, "allow_control": False}
    control = make_plugin(herald_url="http://127.0.0.1:9", printer_key="hpk_k",
                          relay={"enabled": True, "allow_control": True})
    assert control._current_status()["relay"] == {"enabled": True, "mint_api_keys": False, "allow_control": True}
    assert "api_key_user" not in on._current_status()["relay"]  # Herald needs no user names


def test_the_tunnels_control_handlers_refuse_without_consent_and_never_raise(make_plugin):
    from octoprint_herald.appkeys import control_handlers

    plugin = make_plugin()
    handlers = control_handlers(plugin)
    assert set(handlers) == {"mint_api_key", "revoke_api_key"}
    assert handlers["mint_api_key"]({"app": "OctoPod"})["error"] == "relay_off"
    assert handlers["revoke_api_key"]({"key": "ABC"})["error"] == "not_minted"
    assert handlers["revoke_api_key"]({})["error"] == "invalid_key"
