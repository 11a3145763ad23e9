"""Stand-ins for OctoPrint's settings, printer and plugin manager, and a real HTTP 'Herald'."""

from __future__ import annotations

import copy
import logging

import pytest

from tests.plugin.receiver import Receiver
from tests.support.octoprint import import_octoprint_quietly

import_octoprint_quietly()  # before any test module imports octoprint_herald


class StubSettings:
    """The part of OctoPrint's PluginSettings the plugin uses, over a plain dict."""

    def __init__(self, defaults: dict, global_values: dict | None = None) -> None:
        self.values = copy.deepcopy(defaults)
        self.global_values = global_values or {}
        self.saves = 0

    def get(self, path):
        value = self.values
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def get_int(self, path):
        value = self.get(path)
        return None if value is None else int(value)

    def get_boolean(self, path):
        return bool(self.get(path))

    def set(self, path, value):
        target = self.values
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value

    set_boolean = set
    set_int = set

    def global_get(self, path):
        value = self.global_values
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def global_set(self, path, value, force=False):
        target = self.global_values
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = copy.deepcopy(value)

    def save(self):
        self.saves += 1


class StubPrinter:
    """Returns whatever the test put in ``data``, ``temps`` and ``state``."""

    def __init__(self) -> None:
        self.state = "OPERATIONAL"
        self.data = {
            "state": {"text": "Operational", "flags": {"operational": True, "printing": False}},
            "job": {"file": {"name": None, "path": None, "display": None, "origin": None, "size": None},
                    "estimatedPrintTime": None, "user": None},
            "progress": {"completion": None, "filepos": None, "printTime": None, "printTimeLeft": None},
            "currentZ": None,
            "offsets": {},
        }
        self.temps = {"tool0": {"actual": 21.3, "target": 0.0, "offset": 0}, "bed": {"actual": 21.3, "target": 0.0, "offset": 0}}

    def get_current_data(self):
        return copy.deepcopy(self.data)

    def get_current_temperatures(self):
        return copy.deepcopy(self.temps)

    def get_state_id(self):
        return self.state


class StubPluginManager:
    def __init__(self) -> None:
        self.messages = []

    def send_plugin_message(self, identifier, data):
        self.messages.append((identifier, copy.deepcopy(data)))


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def printer():
    return StubPrinter()


@pytest.fixture
def make_plugin(tmp_path, printer):
    """Builds the plugin as OctoPrint would (injected attributes), without OctoPrint running."""
    made = []


    from octoprint_herald import HeraldPlugin

    def make(**settings):
        plugin = HeraldPlugin()
        defaults = plugin.get_settings_defaults()
        defaults.update(settings)
        plugin._settings = StubSettings(defaults)
        plugin._printer = printer
        plugin._plugin_manager = StubPluginManager()
        plugin._identifier = "herald"
        plugin._logger = logging.getLogger("octoprint.plugins.herald.test")
        plugin._data_folder = str(tmp_path / "data")
        plugin._basefolder = str(tmp_path)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.on_shutdown()
