"""Sending mail over SMTP (aiosmtplib), or to the log when no SMTP server is configured.

Callers pass the ``Herald`` state; the SMTP settings in force are read per send,
so an admin's change in the web UI applies at once. Passwords are never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from appliance.core.herald import Herald
from appliance.core.runtime_settings import effective_all

log = logging.getLogger("appliance.mail")


@dataclass(frozen=True)
class MailResult:
    sent: bool  # False: no SMTP server configured, the mail went to the log
    error: str = ""  # non-empty: sending failed (the message says why, for the admin)


async def mail_configured(herald: Herald) -> bool:
    return bool((await effective_all(herald))["smtp_host"])


async def send_mail(herald: Herald, *, to: str, subject: str, text: str) -> MailResult:
    config = await effective_all(herald)
    if not config["smtp_host"]:
        log.warning("No SMTP server is configured; mail to %s not sent. Subject: %s\n%s", to, subject, text)
        return MailResult(sent=False)
    message = EmailMessage()
    message["From"] = config["mail_from"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    tls = config["smtp_tls"]
    try:
        await aiosmtplib.send(
            message,
            hostname=config["smtp_host"],
            port=config["smtp_port"],
            username=config["smtp_username"] or None,
            password=config["smtp_password"] or None,
            use_tls=tls == "tls",
            start_tls=True if tls == "starttls" else False,
            timeout=15,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        log.error("Sending mail to %s failed: %s", to, exc)
        return MailResult(sent=False, error=f"{type(exc).__name__}: {exc}")
    log.info("Mail sent to %s: %s", to, subject)
    return MailResult(sent=True)
