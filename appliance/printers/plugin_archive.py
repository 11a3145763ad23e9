"""The OctoPrint plugin's sources as one zip that pip (and so OctoPrint's Plugin Manager) installs.

Herald ships the plugin's sources: a git checkout has them in ``plugin/``, an installed
Herald (wheel, Docker image, Debian install) under ``<prefix>/share/herald/plugin`` (the
``data-files`` of Herald's ``pyproject.toml``). The zip holds one top-level folder with the
plugin's ``pyproject.toml``, README and package, which is the layout pip builds from.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import sys
import sysconfig
import zipfile
from pathlib import Path

import appliance
from appliance.core.errors import NotFound

ARCHIVE_NAME = "octoprint-herald.zip"
TOP_FOLDER = "OctoPrint-Herald"
PACKAGE = "octoprint_herald"
# Files beside the package that a build needs or a reader expects.
TOP_LEVEL_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md")
# A fixed time stamp makes the same sources give the same bytes (and the same ETag).
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


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


def _wanted(relative: Path) -> bool:
    """Only the plugin's own files: no byte code, build leftovers or tests."""
    parts = relative.parts
    if any(part == "__pycache__" or part.startswith(".") or part in ("tests", "test") for part in parts):
        return False
    return relative.suffix not in (".pyc", ".pyo")


def plugin_files(source: Path) -> list[Path]:
    """The files that go into the archive, relative to ``source``, sorted."""
    files = [Path(name) for name in TOP_LEVEL_FILES if (source / name).is_file()]
    files += [Path(p.name) for p in source.glob("LICEN[CS]E*") if p.is_file()]
    files += [p.relative_to(source) for p in (source / PACKAGE).rglob("*")
              if p.is_file() and _wanted(p.relative_to(source))]
    return sorted(set(files))


def build_plugin_archive(source: Path) -> bytes:
    """A zip of the plugin's sources under one top-level folder, the same bytes for the same files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in plugin_files(source):
            info = zipfile.ZipInfo(f"{TOP_FOLDER}/{relative.as_posix()}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (source / relative).read_bytes())
    return buffer.getvalue()


class PluginArchive:
    """The zip and its ETag, built once per process (the sources do not change while it runs)."""

    def __init__(self) -> None:
        self._built: tuple[bytes, str] | None = None

    async def get(self) -> tuple[bytes, str]:
        if self._built is None:
            source = find_plugin_source()
            if source is None:
                raise NotFound("This Herald was installed without the OctoPrint plugin's sources.")
            data = await asyncio.to_thread(build_plugin_archive, source)
            self._built = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        return self._built
