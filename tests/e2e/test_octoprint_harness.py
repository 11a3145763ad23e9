"""The harness itself: a real OctoPrint starts with this plugin loaded and its settings API works."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from appliance import __version__ as herald_version
from tests.support.octoprint import OctoPrintServer, free_port
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow


def test_octoprint_loads_the_plugin_and_its_api_reaches_herald(tmp_path: Path):
    herald = LiveServer(data_dir=tmp_path / "herald", port=free_port()).start()
    octoprint = OctoPrintServer(tmp_path / "octoprint", plugin_settings={"herald_url": herald.url + "/"})
    try:
        octoprint.start()
        settings = octoprint.api("GET", "/api/settings").json()["plugins"]["herald"]
        # The seeded config carries no settings version: the migration to 1 ran at start.
        assert settings["herald_url"] == herald.url
        assert settings["verify_tls"] is True and settings["attach_snapshot"] is False

        # Saving through OctoPrint's settings API normalises the address and cannot set the key.
        saved = octoprint.api("POST", "/api/settings", json={"plugins": {"herald": {
            "herald_url": f" {herald.url}/ ", "printer_key": "hpk_forged", "interval_idle": 15}}})
        assert saved.status_code == 200, saved.text
        settings = octoprint.api("GET", "/api/settings").json()["plugins"]["herald"]
        assert settings["herald_url"] == herald.url
        assert settings["printer_key"] == "" and settings["interval_idle"] == 15

        state = octoprint.api("GET", "/api/plugin/herald").json()
        assert state["linked"] is False and state["plugin_version"] == version("OctoPrint-Herald")

        test = octoprint.herald_command("test")["result"]
        assert test["reachable"] is True and test["herald_version"] == herald_version
        assert test["version_problem"] is None and "key_accepted" not in test

        # Anonymous callers get nothing from the plugin's API.
        anonymous = octoprint.api("GET", "/api/plugin/herald", headers={"X-Api-Key": "wrong"})
        assert anonymous.status_code in (401, 403)

        herald.stop()
        down = octoprint.herald_command("test")
        assert down["status"] == "failed" and "connection refused" in down["error"]

        # The versioned settings were written with their version.
        config = (tmp_path / "octoprint" / "config.yaml").read_text()
        assert "_config_version: 1" in config
    finally:
        octoprint.stop()
        herald.stop()
