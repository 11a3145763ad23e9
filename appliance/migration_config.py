"""Configuration for Tortoise's migration CLI (``scripts/makemigrations``); not used at run time."""

TORTOISE_ORM = {
    "connections": {"default": "sqlite://:memory:"},
    "apps": {
        "herald": {
            "models": ["appliance.models"],
            "default_connection": "default",
            "migrations": "appliance.migrations",
        }
    },
}
