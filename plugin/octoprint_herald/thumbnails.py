"""The preview picture a slicer embeds in G-code, read without OctoPrint's thumbnail plugins.

PrusaSlicer, OrcaSlicer, SuperSlicer and Cura (with its "Create Thumbnail" script) write
base64 blocks near the top of the file::

    ; thumbnail begin 300x300 12345        (PNG; "thumbnail_JPG" for JPEG, "thumbnail_QOI" for QOI)
    ; iVBORw0KGgo...
    ; thumbnail end

The largest PNG or JPEG that fits the size cap is the job's picture; QOI is skipped.
"""

from __future__ import annotations

import base64
import binascii
import re

_BEGIN = re.compile(r"^;\s*(thumbnail(?:_(PNG|JPG|QOI))?) begin (\d+)x(\d+)\s+(\d+)", re.IGNORECASE)
_END = re.compile(r"^;\s*thumbnail(?:_(PNG|JPG|QOI))? end", re.IGNORECASE)
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
#: Slicers put thumbnails in the header: only this much of the file is read.
SCAN_BYTES = 4 * 1024 * 1024
MAX_THUMBNAIL_BYTES = 2 * 1024 * 1024


def thumbnail_from_lines(lines) -> bytes | None:
    """The best embedded PNG or JPEG among ``lines`` (text lines of G-code), or None."""
    best: tuple[int, bytes] | None = None
    size = None
    chunks: list[str] = []
    for line in lines:
        line = line.strip()
        if size is None:
            found = _BEGIN.match(line)
            if found:
                size = int(found.group(3)) * int(found.group(4))
                chunks = []
            continue
        if _END.match(line):
            try:
                data = base64.b64decode("".join(chunks), validate=False)
            except (binascii.Error, ValueError):
                data = b""
            if data.startswith(_MAGIC) and len(data) <= MAX_THUMBNAIL_BYTES and (best is None or size > best[0]):
                best = (size, data)
            size = None
            continue
        chunks.append(line.lstrip(";").strip())
    return best[1] if best else None


def embedded_thumbnail(path: str) -> bytes | None:
    """The job's preview from the G-code file at ``path``; None when it has none or cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SCAN_BYTES)
    except OSError:
        return None
    return thumbnail_from_lines(head.decode("ascii", errors="replace").splitlines())
