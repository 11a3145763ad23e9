"""GET /plugin/octoprint-herald.zip: the OctoPrint plugin, served by Herald itself.

OctoPrint's Plugin Manager installs "from URL" whatever pip can install, so a box that
reaches only its Herald can still get the plugin. No login: it is the public source.
"""

from __future__ import annotations

import asyncio
import hashlib

from quart import Blueprint, Response, current_app, request
from quart_schema import hide

from appliance.errors import APIError
from appliance.services.plugin_archive import ARCHIVE_NAME, build_plugin_archive, find_plugin_source

blueprint = Blueprint("plugin_download", __name__)

_CACHE_KEY = "herald_plugin_archive"


async def _archive() -> tuple[bytes, str]:
    """The zip and its ETag, built once per process (the sources do not change while it runs)."""
    cached = current_app.extensions.get(_CACHE_KEY)
    if cached is None:
        source = find_plugin_source()
        if source is None:
            raise APIError(404, "not_found",
                           "This Herald was installed without the OctoPrint plugin's sources.")
        data = await asyncio.to_thread(build_plugin_archive, source)
        cached = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        current_app.extensions[_CACHE_KEY] = cached
    return cached


@blueprint.get(f"/plugin/{ARCHIVE_NAME}")
@hide
async def plugin_archive():
    data, etag = await _archive()
    headers = {
        "Content-Disposition": f'attachment; filename="{ARCHIVE_NAME}"',
        "ETag": etag,
        # Cached for a while, then checked again: an upgraded Herald serves a new plugin.
        "Cache-Control": "public, max-age=3600, must-revalidate",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    return Response(data, content_type="application/zip", headers=headers)
