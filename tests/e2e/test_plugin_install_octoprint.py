"""The plugin from Herald alone: a real OctoPrint, in a venv of its own whose pip reaches no package
index, installs the plugin from Herald's URL with its Plugin Manager, then updates it with its
Software Update when Herald carries a newer plugin; Herald's printer page follows the versions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_plugin_octoprint import EMAIL, PASSWORD, HeraldOwner, gcode, link, wait_for
from tests.support.octoprint import OctoPrintServer, free_port, octoprint_venv, offline_pip_env
from tests.support.pictures import gcode_with_thumbnails, png
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def installed_version(python: Path) -> str | None:
    """The plugin version pip installed into OctoPrint's venv (None: not installed there)."""
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, sys\n"
         "d = m.distribution('OctoPrint-Herald')\n"
         "print(d.version, str(d.locate_file('')).startswith(sys.prefix))"],
        capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    version, inside = result.stdout.split()
    assert inside == "True", "the plugin went somewhere else than OctoPrint's venv"
    return version


def newer_plugin(folder: Path) -> tuple[Path, str]:
    """A copy of the plugin's sources with the next patch version."""
    from octoprint_herald.version import __version__

    major, minor, patch = (int(x) for x in __version__.split(".")[:3])
    newer = f"{major}.{minor}.{patch + 1}"
    target = folder / "plugin-next"
    shutil.copytree(ROOT / "plugin", target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    version_file = target / "octoprint_herald" / "version.py"
    version_file.write_text(version_file.read_text().replace(f'"{__version__}"', f'"{newer}"'))
    return target, newer


def start_herald(data_dir: Path, port: int, plugin_source: Path | None = None) -> LiveServer:
    env = {"HERALD_PLUGIN_SOURCE": str(plugin_source)} if plugin_source else {}
    return LiveServer(data_dir=data_dir, port=port, env=env).start()


def printer_page(owner: HeraldOwner, printer_id: str) -> str:
    response = owner.session.get(f"{owner.base_url}/printers/{printer_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def test_octoprint_installs_the_plugin_from_herald_and_updates_it_with_no_package_index(tmp_path: Path):
    from octoprint_herald.version import __version__

    python = octoprint_venv(tmp_path / "octoprint-env")
    assert installed_version(python) is None  # OctoPrint's venv starts without the plugin
    herald_dir, herald_port = tmp_path / "herald", free_port()
    LiveServer(data_dir=herald_dir, port=herald_port).data_dir.mkdir(parents=True)
    made = subprocess.run([sys.executable, "-m", "appliance", "create-admin", "--email", EMAIL,
                           "--password", PASSWORD],
                          env=LiveServer(data_dir=herald_dir, port=herald_port).environ(),
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    herald = start_herald(herald_dir, herald_port)
    octoprint = OctoPrintServer(tmp_path / "octoprint", python=python, env=offline_pip_env(),
                                enable_plugins=("pluginmanager", "softwareupdate"),
                                plugin_settings={"herald_url": herald.url, "printer_name": "Offline Prusa"})
    try:
        octoprint.start()
        # 1. The Plugin Manager's "... from URL" with the address the dashboard shows.
        response = octoprint.api("POST", "/api/plugin/pluginmanager", timeout=300,
                                 json={"command": "install", "url": f"{herald.url}/plugin/octoprint-herald.zip"})
        assert response.status_code == 200, response.text
        wait_for(lambda: installed_version(python), 300, "pip to install the plugin")
        assert installed_version(python) == __version__
        console = (octoprint.basedir / "logs" / "plugin_pluginmanager_console.log").read_text()
        assert "octoprint-herald.zip" in console and "Successfully built OctoPrint-Herald" in console
        octoprint.stop()
        octoprint.start()  # the restart the Plugin Manager asks for
        owner = HeraldOwner(herald.url).login()
        printer_id = link(octoprint, owner)
        # The plugin verifies its key once it publishes: Herald learns its version.
        wait_for(lambda: f"plugin {__version__}" in printer_page(owner, printer_id), 60,
                 "the printer page to show the plugin version")
        assert 'id="plugin-behind"' not in printer_page(owner, printer_id)
        # A print of G-code with PrusaSlicer's embedded preview: the plugin sends the picture once,
        # and Herald's printer page shows it for that job.
        preview = png(64, 64, (40, 160, 90))
        octoprint.wait_operational()
        octoprint.upload_and_print("preview.gcode", gcode_with_thumbnails(
            ("thumbnail", 16, 16, png(16, 16)), ("thumbnail", 64, 64, preview), moves=gcode(20)))
        wait_for(lambda: "slicer's preview" in printer_page(owner, printer_id), 60,
                 "the printer page to show the job's thumbnail")
        image = owner.session.get(f"{herald.url}/printers/{printer_id}/pictures/thumbnail", timeout=10)
        assert image.status_code == 200 and image.content == preview
        wait_for(lambda: octoprint.job()["state"] == "Operational", 120, "the print to finish")

        # 2. Herald is upgraded and carries a newer plugin.
        source, newer = newer_plugin(tmp_path)
        herald.stop()
        herald = start_herald(herald_dir, herald_port, plugin_source=source)
        page = printer_page(owner.login(), printer_id)
        behind = re.search(r'id="plugin-behind">(.*?)</p>', page, re.S)
        assert behind and __version__ in behind.group(1) and newer in behind.group(1), page

        # 3. OctoPrint's Software Update sees it (the plugin's check_config hook asks Herald) ...
        check = octoprint.api("GET", "/plugin/softwareupdate/check?force=true", timeout=120)
        assert check.status_code == 200, check.text
        information = check.json()["information"]["herald"]
        assert information["updateAvailable"] is True, information
        assert information["information"]["remote"]["value"] == newer
        assert information["updatePossible"] is True, information
        # ... and installs it from Herald's wheel, with no package index.
        update = octoprint.api("POST", "/plugin/softwareupdate/update", json={"targets": ["herald"]},
                               timeout=120)
        assert update.status_code == 200, update.text
        wait_for(lambda: installed_version(python) == newer, 300, "Software Update to install the newer plugin")
        console = (octoprint.basedir / "logs" / "plugin_softwareupdate_console.log").read_text()
        assert f"{herald.url}/plugin/octoprint_herald-{newer}-py3-none-any.whl" in console
        octoprint.stop()
        octoprint.start()
        wait_for(lambda: f"plugin {newer}" in printer_page(owner, printer_id), 60,
                 "the printer page to show the updated plugin")
        assert 'id="plugin-behind"' not in printer_page(owner, printer_id)
        after = octoprint.api("GET", "/plugin/softwareupdate/check?force=true", timeout=120).json()
        assert after["information"]["herald"]["updateAvailable"] is False
    finally:
        octoprint.stop()
        herald.stop()
