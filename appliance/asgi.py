"""ASGI entry point for hypercorn's multi-worker mode: ``appliance.asgi:app``.

Migrations have already run in ``herald serve`` before workers start. Each worker is a
process of its own (hypercorn spawns them), so it sets up logging as ``herald serve`` does,
or its INFO lines (a printer's tunnel opening, a relay hop) would be lost.
"""

from appliance.app import create_app, tune_gc_for_serving
from appliance.cli import setup_logging
from appliance.core.settings import load_settings

_settings = load_settings()
setup_logging(_settings)
app = create_app(_settings, run_migrations=False)
tune_gc_for_serving(app)
