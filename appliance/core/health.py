"""Operations: GET /healthz."""

from __future__ import annotations

from quart import Blueprint

from appliance import __version__
from appliance.core.db import database_answers
from appliance.core.herald import current_herald

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz():
    settings = current_herald().settings
    await database_answers()
    return {
        "status": "ok",
        "version": __version__,
        "database": "sqlite" if settings.is_sqlite else "postgresql",
    }
