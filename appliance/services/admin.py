"""Admin rules: managing users, and the rows of the system health page.

Other areas add rows to the health page with ``add_system_rows(herald, provider)``,
where ``provider(herald)`` is an async function returning ``[(label, value), ...]``
(e.g. the webhook queue's depth, the time of the last purge).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from appliance import __version__
from appliance.db import shielded
from appliance.errors import APIError
from appliance.models import Printer, User
from appliance.row_ids import row_id
from appliance.services.accounts import delete_user
from appliance.services.runtime_settings import effective_all

Rows = list[tuple[str, str]]
RowProvider = Callable[[object], Awaitable[Rows]]


def add_system_rows(herald, provider: RowProvider) -> None:
    herald.deps.setdefault("system_rows", []).append(provider)


async def system_rows(herald) -> Rows:
    settings = herald.settings
    config = await effective_all(herald)
    mail = (f"SMTP {config['smtp_host']}:{config['smtp_port']} ({config['smtp_tls']})"
            if config["smtp_host"] else "not configured: mail is written to the log")
    rows: Rows = [
        ("Version", __version__),
        ("Database", "SQLite" if settings.is_sqlite else "PostgreSQL"),
        ("Public URL", settings.base_url),
        ("Users", str(await User.all().count())),
        ("Admins", str(await User.filter(is_admin=True).count())),
        ("Unverified users", str(await User.filter(email_verified_at=None).count())),
        ("Printers", str(await Printer.all().count())),
        ("Linked printers", str(await Printer.filter(key_hash__isnull=False).count())),
        ("Signup mode", config["signup_mode"]),
        ("Mail", mail),
    ]
    for provider in herald.deps.get("system_rows", []):
        rows.extend(await provider(herald))
    return rows


async def get_user(user_id: int | str) -> User:
    number = row_id(User, user_id)
    user = await User.get_or_none(id=number) if number is not None else None
    if user is None:
        raise APIError(404, "not_found", "No user with this id.")
    return user


async def set_admin(user_id: int | str, is_admin: bool) -> User:
    user = await get_user(user_id)
    if user.is_admin and not is_admin and await User.filter(is_admin=True).count() <= 1:
        raise APIError(409, "last_admin", "Herald needs at least one admin; make another user admin first.")
    await shielded(User.filter(id=user.id).update(is_admin=is_admin))
    user.is_admin = is_admin
    return user


async def admin_delete_user(user_id: int | str) -> User:
    user = await get_user(user_id)
    await delete_user(user)
    return user


MAIL_FIELDS = ("smtp_host", "smtp_port", "smtp_tls", "smtp_username", "smtp_password", "mail_from")


async def save_mail_settings(herald, form: dict[str, str]) -> None:
    """Store the mail settings an admin submitted (all or nothing).

    Fields set by the environment are skipped. An empty password keeps the stored
    one unless ``clear_password`` is given.
    """
    from appliance.services.runtime_settings import set_runtime
    from appliance.settings import SettingsError, _parse

    changes: dict[str, str] = {}
    for name in MAIL_FIELDS:
        if name in herald.settings.from_env:
            continue
        value = (form.get(name) or "").strip()
        if name == "smtp_password":
            if form.get("clear_password"):
                value = ""
            elif not value:
                continue
        if name == "smtp_port" and not value:
            value = "587"
        try:
            _parse(name, value)
        except SettingsError as exc:
            raise APIError(400, "invalid_setting", str(exc).split(": ", 1)[-1], extra={"field": name}) from None
        changes[name] = value
    if changes.get("mail_from") is not None and "@" not in changes["mail_from"]:
        raise APIError(400, "invalid_setting", "The sender needs an address like herald@example.com.",
                       extra={"field": "mail_from"})
    for name, value in changes.items():
        await set_runtime(herald, name, value)
