"""Configuration for Tortoise's migration CLI (``scripts/makemigrations``); not used at run time."""

from appliance.core.db import MODEL_MODULES

TORTOISE_ORM = {
    "connections": {"default": "sqlite://:memory:"},
    "apps": {
        "herald": {
            "models": list(MODEL_MODULES),
            "default_connection": "default",
            "migrations": "appliance.migrations",
        }
    },
}
