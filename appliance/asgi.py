"""ASGI entry point for hypercorn's multi-worker mode: ``appliance.asgi:app``.

Migrations have already run in ``herald serve`` before workers start.
"""

from appliance.app import create_app, tune_gc_for_serving

app = create_app(run_migrations=False)
tune_gc_for_serving(app)
