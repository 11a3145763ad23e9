"""The OctoPrint plugin, served by Herald itself: source zip, wheel, and the version it carries.

OctoPrint's Plugin Manager installs "from URL" whatever pip can install, so a box that
reaches only its Herald can still get the plugin: both archives install with
``pip install --no-index``. OctoPrint's Software Update asks ``octoprint-herald.json`` for
the version (the plugin's ``check_config`` hook). No login: it is the public source.
"""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import hide

from appliance.core.errors import NotFound
from appliance.core.herald import current_herald
from appliance.printers.plugin_archive import ARCHIVE_NAME, PluginArchive

blueprint = Blueprint("plugin_download", __name__)

VERSION_DOCUMENT = "octoprint-herald.json"


def _download(data: bytes, etag: str, filename: str, content_type: str) -> Response:
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "ETag": etag,
        # Cached for a while, then checked again: an upgraded Herald serves a new plugin.
        "Cache-Control": "public, max-age=3600, must-revalidate",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    return Response(data, content_type=content_type, headers=headers)


@blueprint.get(f"/plugin/{ARCHIVE_NAME}")
@hide
async def plugin_archive():
    built = await current_herald().part(PluginArchive).get()
    return _download(built.archive, built.archive_etag, ARCHIVE_NAME, "application/zip")


@blueprint.get("/plugin/<name>.whl")
@hide
async def plugin_wheel(name: str):
    built = await current_herald().part(PluginArchive).get()
    if f"{name}.whl" != built.wheel_name:
        raise NotFound(f"This Herald carries the plugin {built.version}: /plugin/{built.wheel_name}.")
    return _download(built.wheel, built.wheel_etag, built.wheel_name, "application/octet-stream")


@blueprint.get(f"/plugin/{VERSION_DOCUMENT}")
@hide
async def plugin_version_document():
    """What OctoPrint's Software Update ("jsondata" check) reads: the version Herald carries."""
    herald = current_herald()
    built = await herald.part(PluginArchive).get()
    base = herald.settings.base_url
    return {"version": built.version, "wheel": f"{base}/plugin/{built.wheel_name}",
            "zip": f"{base}/plugin/{ARCHIVE_NAME}"}
