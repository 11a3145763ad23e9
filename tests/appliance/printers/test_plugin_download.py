"""GET /plugin/octoprint-herald.zip and the wheel: the OctoPrint plugin, served by Herald, installable
by pip with no package index reachable."""

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
    # Every file is the plugin's source, byte for byte, but the build recipe: it names the
    # in-tree backend Herald adds, which needs nothing from a package index.
    archive = zipfile.ZipFile(io.BytesIO(data))
    added = {"herald_wheel.py", "herald_wheel.json"}
    for name in files - added - {"pyproject.toml"}:
        assert archive.read(f"OctoPrint-Herald/{name}") == (ROOT / "plugin" / name).read_bytes(), name
    assert added <= files
    recipe = archive.read("OctoPrint-Herald/pyproject.toml").decode()
    assert "requires = []" in recipe and 'build-backend = "herald_wheel"' in recipe


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


async def test_version_document_names_the_wheel_it_serves(client, settings):
    from octoprint_herald.version import __version__

    response = await client.get("/plugin/octoprint-herald.json")
    assert response.status_code == 200
    document = await response.get_json()
    assert document == {"version": __version__,
                        "wheel": f"{settings.base_url}/plugin/octoprint_herald-{__version__}-py3-none-any.whl",
                        "zip": f"{settings.base_url}/plugin/octoprint-herald.zip"}
    wheel = await client.get(document["wheel"].removeprefix(settings.base_url))
    assert wheel.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(await wheel.get_data())).namelist()
    dist_info = f"octoprint_herald-{__version__}.dist-info"
    assert {f"{dist_info}/METADATA", f"{dist_info}/WHEEL", f"{dist_info}/RECORD",
            f"{dist_info}/entry_points.txt", "octoprint_herald/__init__.py",
            "octoprint_herald/templates/herald_settings.jinja2"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Another version is not here, and the answer says which one is.
    missing = await client.get("/plugin/octoprint_herald-0.0.1-py3-none-any.whl")
    assert missing.status_code == 404
    assert __version__ in await missing.get_data(as_text=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["zip", "wheel"])
async def test_pip_installs_the_served_archive_with_no_index(client, settings, tmp_path, kind):
    """What OctoPrint's Plugin Manager does with the URL, on a box that reaches only Herald:
    pip install it with no package index, then import it."""
    document = await (await client.get("/plugin/octoprint-herald.json")).get_json()
    url = document[kind].removeprefix(settings.base_url)
    response = await client.get(url)
    assert response.status_code == 200
    name = url.rsplit("/", 1)[1]
    await asyncio.to_thread(_pip_install_and_import, await response.get_data(), name, tmp_path)


def _pip_install_and_import(data: bytes, name: str, tmp_path: Path) -> None:
    archive = tmp_path / name
    archive.write_bytes(data)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # --no-deps: OctoPrint and requests are not needed to prove the archive builds and installs.
    # --no-index and no find-links: the build fetches nothing (the venv has no setuptools).
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", str(archive)],
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

