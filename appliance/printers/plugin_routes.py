"""GET /plugin/octoprint-herald.zip: the OctoPrint plugin, served by Herald itself.

OctoPrint's Plugin Manager installs "from URL" whatever pip can install, so a box that
reaches only its Herald can still get the plugin. No login: it is the public source.
"""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import hide

from appliance.core.herald import current_herald
from appliance.printers.plugin_archive import ARCHIVE_NAME, PluginArchive

blueprint = Blueprint("plugin_download", __name__)

@blueprint.get(f"/plugin/{ARCHIVE_NAME}")
@hide
async def plugin_archive():
    data, etag = await current_herald().part(PluginArchive).get()
    headers = {
        "Content-Disposition": f'attachment; filename="{ARCHIVE_NAME}"',
        "ETag": etag,
        # Cached for a while, then checked again: an upgraded Herald serves a new plugin.
        "Cache-Control": "public, max-age=3600, must-revalidate",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    return Response(data, content_type="application/zip", headers=headers)
