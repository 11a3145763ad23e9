"""Operations: GET /healthz."""

from __future__ import annotations

from quart import Blueprint, current_app
from tortoise import Tortoise

from appliance import __version__
from appliance.errors import APIError

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz():
    settings = current_app.extensions["herald"].settings
    try:
        conn = Tortoise.get_connection("default")
        await conn.execute_query("SELECT 1")
    except Exception as exc:  # the database is down: say so, with a 503
        raise APIError(503, "database_unavailable", f"database does not answer: {type(exc).__name__}") from None
    return {
        "status": "ok",
        "version": __version__,
        "database": "sqlite" if settings.is_sqlite else "postgresql",
    }
