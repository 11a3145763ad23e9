"""Pictures of the print: the job's thumbnail (embedded by the slicer) and the latest webcam snapshot.

The plugin uploads a job's thumbnail once per job (``PUT /api/v1/printer/pictures/thumbnail``,
with the job's file name) and Herald keeps the latest webcam snapshot from every event that
carries one (and from ``PUT /api/v1/printer/pictures/webcam``). Each printer keeps at most one
picture of each kind under ``<data dir>/pictures/<printer id>/``, written atomically, so every
process serving the pages sees the same files; removing a printer removes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from appliance.core.errors import Invalid, NotFound, TooLarge, UnsupportedMediaType
from appliance.core.herald import Herald
from appliance.core.times import iso_utc

PICTURE_DIR = "pictures"
KINDS = ("thumbnail", "webcam")
MAX_PICTURE_BYTES = 2 * 1024 * 1024  # the same cap as an event snapshot
_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


def _folder(herald: Herald, printer_id: str) -> Path:
    return herald.settings.data_path / PICTURE_DIR / printer_id


def picture_type(data: bytes) -> str:
    """The picture's media type from its first bytes (PNG or JPEG), else UnsupportedMediaType."""
    if len(data) > MAX_PICTURE_BYTES:
        raise TooLarge("A picture may be at most 2 MiB.", code="picture_too_large")
    for media_type, magic in _MAGIC.items():
        if data.startswith(magic):
            return media_type
    raise UnsupportedMediaType("A picture must be a PNG or JPEG image.", code="picture_not_image")


def save_picture(herald: Herald, printer_id: str, kind: str, data: bytes, *, job_file: str | None = None) -> None:
    if kind not in KINDS:
        raise Invalid(f"kind: one of {', '.join(KINDS)}", field="kind")
    media_type = picture_type(data)
    folder = _folder(herald, printer_id)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"type": media_type, "job_file": (job_file or None) and str(job_file)[:255],
            "taken_at": iso_utc(herald.clock.now())}
    for name, content in ((kind, data), (f"{kind}.json", json.dumps(meta).encode())):
        partial = folder / f"{name}.partial"
        partial.write_bytes(content)
        partial.replace(folder / name)


def pictures_of(herald: Herald, printer_id: str, job_file: str | None) -> dict[str, dict[str, Any]]:
    """What the card and the printer page show: ``{kind: {"url", "taken_at"}}``. A thumbnail
    shows only while its job is the printer's current (or last) job."""
    found: dict[str, dict[str, Any]] = {}
    folder = _folder(herald, printer_id)
    for kind in KINDS:
        try:
            meta = json.loads((folder / f"{kind}.json").read_text())
        except (OSError, ValueError):
            continue
        if kind == "thumbnail" and meta.get("job_file") and job_file and meta["job_file"] != job_file:
            continue
        stamp = str(meta.get("taken_at") or "")
        version = "".join(ch for ch in stamp if ch.isdigit())
        found[kind] = {"url": f"/printers/{printer_id}/pictures/{kind}?v={version}", "taken_at": stamp}
    return found


def read_picture(herald: Herald, printer_id: str, kind: str) -> tuple[bytes, str]:
    folder = _folder(herald, printer_id)
    try:
        meta = json.loads((folder / f"{kind}.json").read_text()) if kind in KINDS else None
        data = (folder / kind).read_bytes() if meta else None
    except (OSError, ValueError):
        data = None
    if not data or not meta:
        raise NotFound("No such picture of this printer.")
    return data, str(meta.get("type") or "application/octet-stream")


def remove_pictures(herald: Herald, printer_id: str) -> None:
    shutil.rmtree(_folder(herald, printer_id), ignore_errors=True)

