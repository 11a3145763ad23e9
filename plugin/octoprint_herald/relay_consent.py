"""The owner's consent to remote access through Herald, as the plugin's settings hold it.

``relay.enabled``: the plugin may keep its tunnel to Herald (remote access to this OctoPrint).
``relay.mint_api_keys``: apps connected through Herald may get an OctoPrint application key of
their own, acting for the OctoPrint user ``relay.api_key_user``. ``relay.allow_control``: Herald
may pause, resume and cancel the current print (job_control.py). All are off by default; minting and
control each need ``enabled`` on too.
"""

from __future__ import annotations

RELAY_DEFAULTS = {"enabled": False, "mint_api_keys": False, "api_key_user": "", "allow_control": False}


def relay_settings(value) -> dict:
    """The relay settings with their defaults; anything but a real true is off, a bad user is none."""
    value = value if isinstance(value, dict) else {}
    user = value.get("api_key_user")
    return {"enabled": value.get("enabled") is True, "mint_api_keys": value.get("mint_api_keys") is True,
            "api_key_user": user.strip() if isinstance(user, str) else "",
            "allow_control": value.get("allow_control") is True}
