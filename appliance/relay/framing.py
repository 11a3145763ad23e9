"""The tunnel's wire format (docs/relay.md): binary data frames with a 5-byte header, JSON control ops.

The plugin keeps its own copy of these few lines (plugin/octoprint_herald/tunnel.py): it is a
separate distribution that imports nothing of Herald.
"""

from __future__ import annotations

import json
import struct
from typing import Any

PROTOCOL_VERSIONS = (1,)
DEFAULT_WINDOW = 1024 * 1024  # credit a stream starts with, per direction (bytes of payload)
MAX_FRAME = 256 * 1024  # payload bytes of one HTTP body frame
MAX_MESSAGE = 1024 * 1024  # a relayed WebSocket message travels whole, up to this size
CREDIT_BATCH_DIVISOR = 4  # grant credit once a quarter of the window was consumed

DATA = 0  # HTTP body bytes
WS_TEXT = 1  # one WebSocket text message
WS_BINARY = 2  # one WebSocket binary message
_HEADER = struct.Struct(">IB")
HEADER_SIZE = _HEADER.size

# Close codes of the tunnel WebSocket.
CLOSE_PROTOCOL = 4400
CLOSE_UNAUTHORISED = 4401  # the key was revoked or the printer unlinked
CLOSE_REPLACED = 4409  # the same printer opened a newer tunnel
CLOSE_GOING_AWAY = 1001


class FrameError(ValueError):
    """A frame or control op that breaks the protocol."""


def encode_frame(stream_id: int, kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(stream_id, kind) + payload


def decode_frame(message: bytes) -> tuple[int, int, memoryview]:
    if len(message) < HEADER_SIZE:
        raise FrameError("a data frame shorter than its 5-byte header")
    stream_id, kind = _HEADER.unpack_from(message)
    if kind not in (DATA, WS_TEXT, WS_BINARY):
        raise FrameError(f"unknown data frame type {kind}")
    return stream_id, kind, memoryview(message)[HEADER_SIZE:]


def encode_op(op: str, **fields: Any) -> str:
    return json.dumps({"op": op, **fields}, separators=(",", ":"))


def decode_op(message: str) -> dict[str, Any]:
    try:
        value = json.loads(message)
    except ValueError as exc:
        raise FrameError(f"a control message that is not JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("op"), str):
        raise FrameError("a control message without an op")
    return value


def pick_version(offered: Any) -> int | None:
    """The highest protocol version both sides speak, or None."""
    if not isinstance(offered, list):
        return None
    common = [v for v in offered if isinstance(v, int) and v in PROTOCOL_VERSIONS]
    return max(common) if common else None
