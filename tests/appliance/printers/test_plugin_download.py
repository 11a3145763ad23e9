"""GET /plugin/octoprint-herald.zip: the OctoPrint plugin, served by Herald, installable by pip."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from appliance.printers.plugin_archive import (
    build_plugin_archive,
    find_plugin_source,
    plugin_source_candidates,
)
from tests.support.users import login, make_user

ROOT = Path(__file__).resolve().parents[3]
URL = "/plugin/octoprint-herald.zip"


@pytest.fixture
def backend() -> str:
    # The download touches no database: one backend is enough.
    return "sqlite"


async def _fetch(client) -> bytes:
    response = await client.get(URL)  # no session, no token: the plugin is public code
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.content_type == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="octoprint-herald.zip"'
    return await response.get_data()


async def test_archive_holds_only_the_plugins_own_files(client, tmp_path):
    # Leftovers of a development checkout must not leak into the archive.
    (ROOT / "plugin" / "octoprint_herald" / "__pycache__").mkdir(exist_ok=True)
    data = await _fetch(client)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {n.split("/", 1)[0] for n in names} == {"OctoPrint-Herald"}  # one folder, as pip expects
    files = {n.split("/", 1)[1] for n in names}
    assert {"pyproject.toml", "README.md", "octoprint_herald/__init__.py", "octoprint_herald/version.py",
            "octoprint_herald/templates/herald_settings.jinja2", "octoprint_herald/static/js/herald.js",
            "octoprint_herald/static/css/herald.css"} <= files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or "egg-info" in f
                or f.startswith(("tests/", "build/", "dist/"))]
    # Every file is the plugin's source, byte for byte.
    archive = zipfile.ZipFile(io.BytesIO(data))
    for name in files:
        assert archive.read(f"OctoPrint-Herald/{name}") == (ROOT / "plugin" / name).read_bytes(), name


async def test_archive_is_cached_and_revalidates(client):
    first = await client.get(URL)
    second = await client.get(URL)
    assert await first.get_data() == await second.get_data()
    etag = first.headers["ETag"]
    assert second.headers["ETag"] == etag
    response = await client.get(URL, headers={"If-None-Match": etag})
    assert response.status_code == 304 and await response.get_data() == b""


async def test_dashboard_hint_gives_the_url_that_serves_the_plugin(client, settings):
    await make_user()
    await login(client)
    html = await (await client.get("/")).get_data(as_text=True)
    found = re.search(r'<code id="plugin-url">([^<]+)</code>', html)
    assert found and found.group(1) == f"{settings.base_url}/plugin/octoprint-herald.zip"
    assert "… from URL" in html
    client.cookie_jar = None  # the plugin is fetched by OctoPrint, which has no Herald session
    response = await client.get(found.group(1).removeprefix(settings.base_url))
    assert response.status_code == 200 and response.content_type == "application/zip"


def test_same_sources_give_the_same_bytes(tmp_path):
    source = find_plugin_source()
    assert source is not None and source == ROOT / "plugin"
    assert build_plugin_archive(source) == build_plugin_archive(source)


def test_installed_location_is_a_candidate():
    # An installed Herald finds the sources its wheel put under <prefix>/share/herald/plugin.
    candidates = plugin_source_candidates()
    assert Path(sys.prefix) / "share" / "herald" / "plugin" in candidates
    assert find_plugin_source([Path("/nonexistent")]) is None


@pytest.mark.slow
async def test_pip_installs_the_served_zip_into_a_fresh_venv(client, tmp_path):
    """What OctoPrint's Plugin Manager does with the URL: pip install it, then import it."""
    data = await _fetch(client)
    await asyncio.to_thread(_pip_install_and_import, data, tmp_path)


def _pip_install_and_import(data: bytes, tmp_path: Path) -> None:
    archive = tmp_path / "octoprint-herald.zip"
    archive.write_bytes(data)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # --no-deps: OctoPrint and requests are not needed to prove the archive builds and installs.
    # The plugin's build backend (setuptools, pinned by its pyproject.toml) comes from pip's
    # configured index or find-links, as it would on an OctoPrint box.
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", str(archive)],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # Importing the plugin needs OctoPrint (not installed here): let the venv see the test
    # environment's packages *after* its own. A path line in a .pth file runs no .pth files
    # of that folder, so the test environment's editable plugin stays out of sight.
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    test_site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(site_packages, "zz_test_environment.pth").write_text(test_site + "\n")
    check = tmp_path / "check.py"
    check.write_text(
        "import importlib.metadata as metadata\n"
        "from pathlib import Path\n"
        "import octoprint_herald\n"
        "folder = Path(octoprint_herald.__file__).parent\n"
        "assert (folder / 'templates' / 'herald_settings.jinja2').is_file()\n"
        "assert (folder / 'static' / 'js' / 'herald.js').is_file()\n"
        "entry = [e.value for e in metadata.entry_points(group='octoprint.plugin') if e.name == 'herald']\n"
        "print(folder.is_relative_to(Path(__import__('sys').prefix)), entry,\n"
        "      metadata.version('OctoPrint-Herald') == octoprint_herald.__version__,\n"
        "      (octoprint_herald.__plugin_load__(), type(octoprint_herald.__plugin_implementation__).__name__)[1], octoprint_herald.__plugin_pythoncompat__)\n")
    result = subprocess.run([str(python), str(check)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[:4] == ["True", "['octoprint_herald']", "True", "HeraldPlugin"], result.stdout
