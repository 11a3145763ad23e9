"""Write the OctoPrint plugin's wheel with the standard library alone, and be its build backend.

A wheel is a zip with a ``.dist-info`` folder (PEP 427, PEP 491), so no setuptools and no
package index are needed to make one. Herald calls :func:`build_wheel_bytes` to serve the
wheel; the source zip Herald serves carries this very file as its in-tree PEP 517 backend
(``backend-path``), so ``pip install octoprint-herald.zip`` builds with nothing fetched.

This module must stay standard-library only and valid on Python 3.9 (OctoPrint's oldest):
it runs inside OctoPrint's pip, not inside Herald.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

#: The file beside the sources that carries the distribution's metadata for the backend.
METADATA_FILE = "herald_wheel.json"
WHEEL_TAG = "py3-none-any"
# A fixed time stamp makes the same sources give the same bytes (and the same ETag).
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def normalized_name(name: str) -> str:
    """The distribution name as wheel file names spell it (PEP 427, PEP 503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_filename(meta: dict) -> str:
    return "{}-{}-{}.whl".format(normalized_name(meta["name"]), meta["version"], WHEEL_TAG)


def wanted(relative: Path) -> bool:
    """Only the package's own files: no byte code, build leftovers or tests."""
    parts = relative.parts
    if any(part == "__pycache__" or part.startswith(".") or part in ("tests", "test") for part in parts):
        return False
    return relative.suffix not in (".pyc", ".pyo")


def package_files(source: Path, packages: list) -> list:
    files = []
    for package in packages:
        files += [p.relative_to(source) for p in (source / package).rglob("*")
                  if p.is_file() and wanted(p.relative_to(source))]
    return sorted(set(files))


def metadata_text(meta: dict, readme: str) -> str:
    lines = ["Metadata-Version: 2.1", "Name: " + meta["name"], "Version: " + meta["version"]]
    if meta.get("summary"):
        lines.append("Summary: " + meta["summary"])
    if meta.get("license"):
        lines.append("License: " + meta["license"])
    if meta.get("requires_python"):
        lines.append("Requires-Python: " + meta["requires_python"])
    lines += ["Requires-Dist: " + requirement for requirement in meta.get("requires_dist", [])]
    if readme:
        lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + readme


def entry_points_text(meta: dict) -> str:
    out = []
    for group, entries in sorted(meta.get("entry_points", {}).items()):
        out.append(f"[{group}]")
        out += [f"{key} = {value}" for key, value in sorted(entries.items())]
        out.append("")
    return "\n".join(out)


def dist_info_files(meta: dict, readme: str) -> dict:
    return {
        "METADATA": metadata_text(meta, readme),
        "WHEEL": f"Wheel-Version: 1.0\nGenerator: herald\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n",
        "entry_points.txt": entry_points_text(meta),
        "top_level.txt": "".join(p + "\n" for p in meta["packages"]),
    }


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{name},sha256={digest},{len(data)}"


def build_wheel_bytes(source: Path, meta: dict) -> tuple:
    """``(file name, bytes)`` of the wheel of the package(s) under ``source``; same files, same bytes."""
    source = Path(source)
    readme_path = source / "README.md"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    dist_info = "{}-{}.dist-info".format(normalized_name(meta["name"]), meta["version"])
    entries = [(relative.as_posix(), (source / relative).read_bytes())
               for relative in package_files(source, meta["packages"])]
    entries += [(f"{dist_info}/{name}", text.encode("utf-8"))
                for name, text in sorted(dist_info_files(meta, readme).items())]
    record_name = dist_info + "/RECORD"
    record = "".join(_record_line(name, data) + "\n" for name, data in entries) + record_name + ",,\n"
    entries.append((record_name, record.encode("utf-8")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return wheel_filename(meta), buffer.getvalue()


##~~ PEP 517 backend (used when pip builds Herald's source zip of the plugin)

def _meta_here() -> dict:
    with open(METADATA_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    meta = _meta_here()
    readme = Path("README.md").read_text(encoding="utf-8") if Path("README.md").is_file() else ""
    name = "{}-{}.dist-info".format(normalized_name(meta["name"]), meta["version"])
    folder = Path(metadata_directory) / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in dist_info_files(meta, readme).items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, data = build_wheel_bytes(Path(os.getcwd()), _meta_here())
    with open(os.path.join(wheel_directory, name), "wb") as handle:
        handle.write(data)
    return name
