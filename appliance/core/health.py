"""Operations: GET /healthz."""

from __future__ import annotations

from quart import Blueprint

from appliance import __version__
from appliance.core.db import database_answers
from appliance.core.herald import current_herald
from appliance.core.storage import DiskState

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz():
    herald = current_herald()
    settings = herald.settings
    await database_answers()
    disk = herald.part(DiskState)
    return {
        "status": "ok",
        "version": __version__,
        "database": "sqlite" if settings.is_sqlite else "postgresql",
        # "full" since the last write that failed for want of space, until one succeeds.
        "storage": "full" if disk.full_since is not None else "ok",
    }
