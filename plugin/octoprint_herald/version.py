"""The plugin's version and the Herald API it speaks (kept apart so packaging can read it)."""

__version__ = "0.1.0"

#: The path prefix of the Herald API this plugin speaks.
API_PREFIX = "/api/v1"

#: The oldest Herald release that has everything this plugin uses.
MIN_HERALD_VERSION = "0.1.0"
