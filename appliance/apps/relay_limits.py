"""The relay's limits per connection: declared once in settings, read by the tunnel, told to apps.

The tunnel (appliance/relay) reads ``RelayLimits.of(herald.settings)`` when it opens a stream;
``GET /api/appconnection/info`` reports the same numbers in ``PrinterLimits``, so an app knows
before it tries. The limits apply to each App Connection and to the owner's own browser access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.core.settings import Settings

# What OctoEverywhere's apps read where Herald sets no limit: the largest value a 32-bit int holds.
NO_LIMIT = 2_147_483_647


@dataclass(frozen=True)
class RelayLimits:
    """Per connection: streams open at once, bytes per second each way (0 = no cap),
    the largest request body in bytes, and the seconds a stream may move nothing."""

    max_streams: int
    bandwidth: int
    max_body: int
    idle_seconds: int

    @classmethod
    def of(cls, settings: Settings) -> RelayLimits:
        return cls(max_streams=settings.relay_max_streams, bandwidth=settings.relay_bandwidth,
                   max_body=settings.relay_max_body, idle_seconds=settings.relay_idle_seconds)


def _int32(value: int) -> int:
    return min(value, NO_LIMIT)


def printer_limits(limits: RelayLimits) -> dict[str, Any]:
    """``PrinterLimits`` of the app API: OctoEverywhere's names first, then Herald's own.

    OctoEverywhere's apps read the first five; Herald caps no download and no webcam time, so
    those are NO_LIMIT. The rest are Herald's additions (apps ignore names they do not know).
    """
    return {
        "MaxDownloadFileSizeBytes": NO_LIMIT,
        "MaxUploadFileSizeBytes": _int32(limits.max_body),
        "MaxSingleWebcamStreamLengthSeconds": NO_LIMIT,
        "MaxTotalWebcamStreamTimePerTimeWindowSeconds": NO_LIMIT,
        "WebcamStreamTimeWindow": NO_LIMIT,
        "MaxConcurrentStreams": limits.max_streams,
        "MaxBandwidthBytesPerSecond": _int32(limits.bandwidth) if limits.bandwidth else NO_LIMIT,
        "MaxRequestBodyBytes": limits.max_body,
        "IdleStreamTimeoutSeconds": limits.idle_seconds,
    }
