"""The plugin version each printer runs (its verify says it) against the one this Herald carries."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from octoprint_herald.version import __version__

from appliance.core.settings import Settings
from appliance.printers.plugin_archive import PluginArchive
from appliance.printers.plugin_compat import plugin_behind
from tests.support.printers import make_printer
from tests.support.users import login, make_user

ROOT = Path(__file__).resolve().parents[3]
CARRIED = "9.0.0"  # the plugin this Herald carries, newer than any the printer runs


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    source = tmp_path / "plugin"
    shutil.copytree(ROOT / "plugin", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    version = source / "octoprint_herald" / "version.py"
    version.write_text(version.read_text().replace(f'"{__version__}"', f'"{CARRIED}"'))
    return Settings.build(data_dir=str(tmp_path), database_url=database_url, public_url="http://herald.test",
                          smtp_host="", plugin_source=str(source))


def test_behind_compares_numbers():
    assert plugin_behind("0.1.0", "0.1.1") and plugin_behind("0.9.0", "0.10.0")
    assert not plugin_behind("0.1.1", "0.1.1") and not plugin_behind("0.2.0", "0.1.9")
    assert not plugin_behind(None, "0.1.0") and not plugin_behind("0.1.0", None)


async def _page(client, printer_id: str) -> str:
    return await (await client.get(f"/printers/{printer_id}")).get_data(as_text=True)


async def test_printer_page_shows_the_plugin_version_and_says_when_it_is_behind(client, herald):
    assert await herald.part(PluginArchive).version() == CARRIED
    user = await make_user()
    printer, key = await make_printer(herald, user)
    await login(client)
    page = await _page(client, printer.id)
    assert "· plugin" not in page and 'id="plugin-behind"' not in page  # no verify yet: unknown

    response = await client.post("/api/v1/printer/verify", json={"plugin_version": __version__},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, await response.get_data(as_text=True)
    page = await _page(client, printer.id)
    assert f"plugin {__version__}" in page
    behind = re.search(r'id="plugin-behind">(.*?)</p>', page, re.S)
    assert behind and __version__ in behind.group(1) and CARRIED in behind.group(1)

    await client.post("/api/v1/printer/verify", json={"plugin_version": CARRIED},
                      headers={"Authorization": f"Bearer {key}"})
    page = await _page(client, printer.id)
    assert f"plugin {CARRIED}" in page and 'id="plugin-behind"' not in page


async def test_version_document_follows_the_configured_sources(client):
    document = await (await client.get("/plugin/octoprint-herald.json")).get_json()
    assert document["version"] == CARRIED
    assert document["wheel"].endswith(f"/plugin/octoprint_herald-{CARRIED}-py3-none-any.whl")
