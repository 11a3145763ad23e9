"""Admin rules: managing users, and the rows of the system health page.

Other areas add rows to the health page through ``herald.hooks.system_rows`` (wired in
create_app), where ``provider(herald)`` is an async function returning
``[(label, value), ...]`` (e.g. the webhook queue's depth, the time of the last purge).
"""

from __future__ import annotations

from appliance import __version__
from appliance.accounts.models import User
from appliance.accounts.users import delete_user
from appliance.core.db import shielded
from appliance.core.errors import Conflict, Invalid, NotFound
from appliance.core.herald import Herald
from appliance.core.row_ids import row_id
from appliance.core.runtime_settings import effective_all
from appliance.printers.models import Printer
from appliance.webhooks.models import WebhookTarget

Rows = list[tuple[str, str]]


async def system_rows(herald: Herald) -> Rows:
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
    for provider in herald.hooks.system_rows:
        rows.extend(await provider(herald))
    return rows


async def list_users() -> list[User]:
    return await User.all().order_by("created_at", "id")


async def what_user_owns(user: User) -> dict[str, int]:
    """What deleting the user would delete with them, to ask first."""
    return {"printer_count": await Printer.filter(owner_id=user.id).count(),
            "webhook_count": await WebhookTarget.filter(owner_id=user.id).count()}


async def get_user(user_id: int | str) -> User:
    number = row_id(User, user_id)
    user = await User.get_or_none(id=number) if number is not None else None
    if user is None:
        raise NotFound("No user with this id.")
    return user


async def set_admin(user_id: int | str, is_admin: bool) -> User:
    user = await get_user(user_id)
    if user.is_admin and not is_admin and await User.filter(is_admin=True).count() <= 1:
        raise Conflict("Herald needs at least one admin; make another user admin first.", code="last_admin")
    await shielded(User.filter(id=user.id).update(is_admin=is_admin))
    user.is_admin = is_admin
    return user


async def admin_delete_user(herald: Herald, user_id: int | str) -> User:
    user = await get_user(user_id)
    await delete_user(herald, user)
    return user


MAIL_FIELDS = ("smtp_host", "smtp_port", "smtp_tls", "smtp_username", "smtp_password", "mail_from")


async def save_mail_settings(herald: Herald, form: dict[str, str]) -> None:
    """Store the mail settings an admin submitted (all or nothing).

    Fields set by the environment are skipped. An empty password keeps the stored
    one unless ``clear_password`` is given.
    """
    from appliance.core.runtime_settings import save_form

    def check(changes: dict[str, str]) -> None:
        if changes.get("mail_from") is not None and "@" not in changes["mail_from"]:
            raise Invalid("The sender needs an address like herald@example.com.", field="mail_from",
                          code="invalid_setting")

    await save_form(herald, form, MAIL_FIELDS, defaults={"smtp_port": "587"}, check=check)
