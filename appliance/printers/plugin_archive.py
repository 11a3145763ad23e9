"""The OctoPrint plugin as pip (and so OctoPrint's Plugin Manager) installs it with no package index.

Herald ships the plugin's sources: a git checkout has them in ``plugin/``, an installed
Herald (wheel, Docker image, Debian install) under ``<prefix>/share/herald/plugin`` (the
``data-files`` of Herald's ``pyproject.toml``). From them Herald serves two archives:

- a wheel (``octoprint_herald-<version>-py3-none-any.whl``), written by ``plugin_wheel``;
- the source zip (one top-level folder, the layout pip builds from) whose ``pyproject.toml``
  names ``plugin_wheel`` itself as an in-tree build backend with no requirements, so pip
  builds it without fetching setuptools from an index.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import appliance
from appliance.core.errors import NotFound
from appliance.printers import plugin_wheel

ARCHIVE_NAME = "octoprint-herald.zip"
TOP_FOLDER = "OctoPrint-Herald"
PACKAGE = "octoprint_herald"
# Files beside the package that a build needs or a reader expects.
TOP_LEVEL_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md")
_ZIP_TIME = plugin_wheel.ZIP_TIME
# The source zip's own pyproject.toml: build with the in-tree backend, fetch nothing.
_BACKEND_MODULE = "herald_wheel"
_SOURCE_PYPROJECT = f"""# Written by Herald: builds with the standard library alone (see {_BACKEND_MODULE}.py).
[build-system]
requires = []
build-backend = "{_BACKEND_MODULE}"
backend-path = ["."]
"""


def plugin_source_candidates() -> list[Path]:
    """Where the plugin's sources may be, in the order they are tried."""
    checkout = Path(appliance.__file__).resolve().parent.parent / "plugin"
    installed = [Path(sysconfig.get_path("data")) / "share" / "herald" / "plugin",
                 Path(sys.prefix) / "share" / "herald" / "plugin"]
    return [checkout, *dict.fromkeys(installed)]


def is_plugin_source(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / PACKAGE / "__init__.py").is_file()


def find_plugin_source(candidates: list[Path] | None = None) -> Path | None:
    for path in plugin_source_candidates() if candidates is None else candidates:
        if is_plugin_source(path):
            return path
    return None


def plugin_files(source: Path) -> list[Path]:
    """The files that go into the source zip, relative to ``source``, sorted."""
    files = [Path(name) for name in TOP_LEVEL_FILES if (source / name).is_file()]
    files += [Path(p.name) for p in source.glob("LICEN[CS]E*") if p.is_file()]
    files += plugin_wheel.package_files(source, [PACKAGE])
    return sorted(set(files))


def plugin_version(source: Path) -> str:
    """The plugin's version, read from its ``version.py`` the way its setuptools build reads it."""
    text = (source / PACKAGE / "version.py").read_text(encoding="utf-8")
    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if found is None:
        raise NotFound("The plugin's sources name no version.")
    return found.group(1)


def plugin_metadata(source: Path) -> dict:
    """What the wheel's ``.dist-info`` says, from the plugin's own ``pyproject.toml``."""
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        "name": project["name"],
        "version": plugin_version(source),
        "summary": project.get("description", ""),
        "license": project.get("license", ""),
        "requires_python": project.get("requires-python", ""),
        "requires_dist": list(project.get("dependencies", [])),
        "entry_points": project.get("entry-points", {}),
        "packages": [PACKAGE],
    }


def _zip_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(f"{TOP_FOLDER}/{name}", date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_plugin_archive(source: Path) -> bytes:
    """The source zip under one top-level folder that builds offline; the same bytes for the same files."""
    meta = plugin_metadata(source)
    backend = Path(plugin_wheel.__file__).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in plugin_files(source):
            data = (source / relative).read_bytes()
            if relative == Path("pyproject.toml"):
                data = _SOURCE_PYPROJECT.encode()
            _zip_entry(archive, relative.as_posix(), data)
        _zip_entry(archive, f"{_BACKEND_MODULE}.py", backend)
        _zip_entry(archive, plugin_wheel.METADATA_FILE, json.dumps(meta, indent=1, sort_keys=True).encode())
    return buffer.getvalue()


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class BuiltPlugin:
    version: str
    archive: bytes
    archive_etag: str
    wheel_name: str
    wheel: bytes
    wheel_etag: str


def build_plugin(source: Path) -> BuiltPlugin:
    archive = build_plugin_archive(source)
    wheel_name, wheel = plugin_wheel.build_wheel_bytes(source, plugin_metadata(source))
    return BuiltPlugin(plugin_version(source), archive, _etag(archive), wheel_name, wheel, _etag(wheel))


class PluginArchive:
    """The plugin's zip and wheel, built once per process on first request (no network, no setuptools)."""

    def __init__(self, source: Path | str | None = None) -> None:
        """``source``: the plugin's folder (the ``plugin_source`` setting); None finds the installed copy."""
        self._source = Path(source).expanduser() if source else None
        self._built: BuiltPlugin | None = None

    async def get(self) -> BuiltPlugin:
        if self._built is None:
            if self._source is not None and not is_plugin_source(self._source):
                raise NotFound(f"HERALD_PLUGIN_SOURCE ({self._source}) holds no OctoPrint plugin sources.")
            source = self._source or find_plugin_source()
            if source is None:
                raise NotFound("This Herald was installed without the OctoPrint plugin's sources.")
            self._built = await asyncio.to_thread(build_plugin, source)
        return self._built

    async def version(self) -> str | None:
        """The plugin version this Herald carries, or None when it has no plugin sources."""
        try:
            return (await self.get()).version
        except NotFound:
            return None
