"""Helpers to make users and logged-in test clients."""

from __future__ import annotations

import re

from appliance.accounts.users import create_user
from appliance.core.clock import Clock

PASSWORD = "correct horse battery staple"


async def make_user(email: str = "ada@example.com", *, admin: bool = False, verified: bool = True,
                    password: str = PASSWORD, clock: Clock | None = None):
    return await create_user(email, password, is_admin=admin, verified=verified, clock=clock or Clock())


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_from(client, path: str = "/login") -> str:
    response = await client.get(path)
    match = _CSRF.search(await response.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def login(client, email: str = "ada@example.com", password: str = PASSWORD) -> str:
    """Log the test client in through the real form; returns the session's CSRF token."""
    token = await csrf_from(client, "/login")
    response = await client.post("/login", form={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, await response.get_data(as_text=True)
    return await csrf_from(client, "/")
