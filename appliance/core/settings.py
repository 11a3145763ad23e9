"""Herald's settings: every setting is declared once, in SETTINGS, with its default and help.

Sources, lowest to highest precedence: the defaults below, an optional TOML file
(``HERALD_CONFIG``, else ``<data_dir>/herald.toml`` when it exists), then
environment variables named ``HERALD_<NAME>``. ``docs/settings.md`` is checked
against this table by a test, so the documentation cannot fall behind.

Settings an admin may change at run time (signup mode, mail) also live in the
database; see ``appliance.core.runtime_settings``. Where an environment
variable is set, it wins, and the UI shows the field as set by the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value Herald cannot use; the message names the setting."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = str
    secret: bool = False
    runtime: bool = False  # an admin may change it in the web UI (stored in the database)


SIGNUP_MODES = ("open", "invite", "closed")


def _signup_mode(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in SIGNUP_MODES:
        raise ValueError(f"expected one of {', '.join(SIGNUP_MODES)}, got {value!r}")
    return text


def _smtp_tls(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("none", "starttls", "tls"):
        raise ValueError(f"expected none, starttls or tls, got {value!r}")
    return text


def _mqtt_tls(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("none", "tls"):
        raise ValueError(f"expected none or tls, got {value!r}")
    return text


def _topic_level(value: Any) -> str:
    """One or more MQTT topic levels without wildcards, e.g. ``homeassistant`` or ``home/herald``."""
    text = str(value).strip().strip("/")
    if not text or any(char in text for char in "+#\0") or "//" in text:
        raise ValueError(f"expected a topic without wildcards such as homeassistant, got {value!r}")
    return text


def _port(value: Any) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError(f"expected a port from 1 to 65535, got {number}")
    return number


def _nonneg_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    return number


def _pos_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"must be positive, got {number}")
    return number


def _pos_float(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be positive, got {number}")
    return number


def _cert_url_base(value: Any) -> str:
    from urllib.parse import urlsplit

    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.path.endswith("/"):
        raise ValueError(f"expected http(s)://host[:port]/path/ ending in a slash, got {value!r}")
    return text


def _seconds_list(value: Any) -> list[float]:
    items = value if isinstance(value, list | tuple) else _list(value)
    numbers = [float(item) for item in items]
    if not numbers or any(n <= 0 for n in numbers):
        raise ValueError("expected one or more positive numbers of seconds")
    return numbers


def _token_minutes(value: Any) -> int:
    number = int(value)
    if number < 6:
        raise ValueError(f"must be at least 6 (Alexa needs tokens valid 6 minutes), got {number}")
    return number


SETTINGS: tuple[Setting, ...] = (
    # --- serving
    Setting("host", "127.0.0.1", "Address to bind; 0.0.0.0 to listen on every interface."),
    Setting("port", 8080, "TCP port to listen on.", _pos_int),
    Setting("workers", 1, "Number of hypercorn worker processes (more than one needs PostgreSQL).", _pos_int),
    Setting("data_dir", "./data", "Directory for the SQLite database, the encryption key and snapshots."),
    Setting(
        "database_url",
        "",
        "Database URL: sqlite:///path/to/file or postgres://user:pass@host:5432/db. "
        "Empty means a SQLite file herald.sqlite3 in the data directory.",
        secret=True,
    ),
    Setting(
        "public_url",
        "",
        "The address Alexa, plugins and browsers use, e.g. https://herald.example.com. "
        "Links in mail and the device flow are built from it. Empty means http://HOST:PORT.",
    ),
    Setting(
        "trusted_proxies",
        [],
        "Comma-separated addresses or CIDR networks of reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto headers are believed.",
        _list,
    ),
    Setting("log_level", "INFO", "Logging level: DEBUG, INFO, WARNING or ERROR."),
    Setting("request_body_seconds", 60.0, "Seconds a client has to send a whole request body; "
            "a slower one is answered 408 and its connection closed.", _pos_float),
    Setting("uploads_per_client", 32, "Request bodies one client address may have unfinished at once; "
            "more are answered 429.", _pos_int),
    # Off by default: hypercorn's read timeout runs for the whole connection, so it would cut a relayed
    # webcam stream or a long download whose client only receives (docs/relay.md). Slow request
    # headers are bounded by the keep-alive timeout (75 s, cli.py) and slow bodies by
    # request_body_seconds, so turning it off opens no slow-client hole.
    Setting("idle_read_seconds", 0, "Seconds a connection may send nothing (hypercorn's read timeout) "
            "before it is closed; 0 turns it off (the default: it would cut relayed webcam streams and "
            "long downloads, whose clients only receive).", _nonneg_int),
    Setting(
        "plugin_source",
        "",
        "Folder of the OctoPrint plugin's sources that Herald serves (as a wheel and a zip) and offers "
        "as the plugin's update. Empty means the copy installed with Herald.",
    ),
    # --- accounts
    Setting(
        "signup_mode",
        "invite",
        "Who may sign up: open (anyone), invite (with an admin's invite link) or closed.",
        _signup_mode,
        runtime=True,
    ),
    Setting("session_days", 30, "How long a login session lasts, in days.", _pos_int),
    # --- mail
    Setting("smtp_host", "", "SMTP server host; empty means mail is written to the log instead.", runtime=True),
    Setting("smtp_port", 587, "SMTP server port.", _pos_int, runtime=True),
    Setting("smtp_username", "", "SMTP user name (empty for none).", runtime=True),
    Setting("smtp_password", "", "SMTP password (stored encrypted when set in the web UI).", secret=True, runtime=True),
    Setting("smtp_tls", "starttls", "SMTP transport security: none, starttls or tls.", _smtp_tls, runtime=True),
    Setting("mail_from", "herald@localhost", "Sender address of Herald's mail.", runtime=True),
    # --- MQTT (Home Assistant discovery): appliance/mqtt, docs/home-assistant.md
    Setting("mqtt_host", "", "MQTT broker host Herald publishes printers to (Home Assistant's MQTT discovery); "
            "empty turns MQTT off.", runtime=True),
    Setting("mqtt_port", 1883, "MQTT broker port (usually 1883, or 8883 with TLS).", _port, runtime=True),
    Setting("mqtt_tls", "none", "MQTT transport security: none, or tls (the broker's certificate is checked "
            "against the system's CA certificates).", _mqtt_tls, runtime=True),
    Setting("mqtt_username", "", "MQTT user name (empty for none).", runtime=True),
    Setting("mqtt_password", "", "MQTT password (stored encrypted when set in the web UI).", secret=True, runtime=True),
    Setting("mqtt_discovery_prefix", "homeassistant", "Home Assistant's MQTT discovery prefix (its MQTT "
            "integration's setting; homeassistant unless changed there).", _topic_level, runtime=True),
    Setting("mqtt_base_topic", "herald", "Topic under which Herald publishes printers' state and events "
            "(herald/PRINTER-ID/state by default); one per Herald on a shared broker.", _topic_level, runtime=True),
    Setting("mqtt_queue_limit", 10000, "Messages waiting for the broker at most; past it new messages are "
            "dropped and everything is published again once the broker takes messages.", _pos_int),
    # --- printers and status
    Setting(
        "offline_after",
        300,
        "Seconds of silence after which a printer counts as offline.",
        _pos_int,
    ),
    Setting(
        "offline_check_interval",
        15,
        "Seconds between checks for printers that fell silent (one process checks at a time).",
        _pos_int,
    ),
    Setting(
        "purge_after_days",
        10,
        "Remove printers that have not checked in for this many days (0 disables).",
        _nonneg_int,
    ),
    Setting(
        "purge_warn_days",
        7,
        "Warn the owner (dashboard, and mail when configured) after this many days of silence.",
        _nonneg_int,
    ),
    Setting("event_retention_days", 30, "Keep stored printer events this many days.", _pos_int),
    Setting(
        "live_heartbeat",
        15.0,
        "Seconds between keep-alive messages on the live dashboard stream; each one also "
        "re-reads the user's printers from the database (added, renamed or removed printers, "
        "and status accepted by another worker process).",
        _pos_float,
    ),
    Setting(
        "status_flush_interval",
        1.0,
        "Seconds between writes of coalesced printer status to the database.",
        _pos_float,
    ),
    # --- Alexa and the OAuth server
    Setting(
        "alexa_skill_id",
        "",
        "The Alexa skill's id (amzn1.ask.skill....); requests for any other skill are refused. "
        "Empty refuses every Alexa request.",
    ),
    Setting(
        "alexa_verify_requests",
        True,
        "Verify that Alexa requests are signed by Amazon. Turn off only for local testing: "
        "Herald then logs a warning at every start.",
        _bool,
    ),
    Setting(
        "alexa_cert_url_base",
        "https://s3.amazonaws.com/echo.api/",
        "For tests only: where Alexa's signing certificate may be fetched from (scheme, host, port "
        "and path prefix a SignatureCertChainUrl must have). Amazon's rule is the default; anything "
        "else makes Herald accept certificates from elsewhere, and it logs a warning at every start.",
        _cert_url_base,
    ),
    Setting(
        "alexa_trust_roots_file",
        "",
        "For tests only: a PEM file whose certificates are the only roots Alexa's signing "
        "certificate may chain to, instead of the system's CA bundle. Empty (the default) trusts "
        "the system's roots, as Amazon requires; set, Herald logs a warning at every start.",
    ),
    Setting(
        "alexa_single_owner",
        False,
        "One-person household: answer every Alexa request for the admin's printers, "
        "without account linking.",
        _bool,
    ),
    Setting(
        "alexa_client_id",
        "",
        "The skill's own client id for Alexa notifications (developer console, Build > Permissions, "
        "Alexa Skill Messaging). With the secret, Herald can send print done, failed and needs-attention "
        "notifications to users who turn them on; empty sends none.",
    ),
    Setting(
        "alexa_client_secret",
        "",
        "The skill's client secret for Alexa notifications (next to the client id).",
        secret=True,
    ),
    Setting(
        "alexa_api_base",
        "https://api.amazonalexa.com",
        "Alexa's API address for notifications to a user Herald has not yet heard from; otherwise the "
        "address the user's own requests name (apiEndpoint) is used, as it differs by region.",
    ),
    Setting(
        "alexa_token_url",
        "https://api.amazon.com/auth/o2/token",
        "Login with Amazon's token address, where Herald exchanges the client id and secret for a "
        "notification token.",
    ),
    Setting(
        "oauth_access_token_minutes",
        60,
        "Lifetime of OAuth access tokens in minutes (at least 6, as Alexa requires).",
        _token_minutes,
    ),
    # --- app connections
    Setting(
        "relay_url",
        "",
        "Base address of App Connections' relay, e.g. https://relay.example.com: each connection "
        "gets its own host under it (https://app-<id>.relay.example.com, so a wildcard DNS name and "
        "certificate are needed). Empty means the public URL's host.",
    ),
    Setting(
        "relay_owner_origin",
        "",
        "Where HERALD_RELAY_URL cannot have subdomains (an IP address, a single host name such as a "
        "Tailscale Funnel's): a separate origin for the owner's \"Open OctoPrint\", e.g. "
        "https://herald.example.ts.net:8443, which the reverse proxy sends to Herald with its Host kept. "
        "Requests to it are only ever relayed. Empty: without a wildcard domain, Open OctoPrint is refused.",
    ),
    # --- the relay's limits, per App Connection (and per owner's browser access)
    Setting("relay_max_streams", 32, "Streams (HTTP requests, WebSockets, webcam streams) one connection may "
            "have open through the relay at once; more are answered 429.", _pos_int),
    Setting("relay_bandwidth", 0, "Bytes per second one connection may move through the relay in each "
            "direction; 0 means no cap. Apps read it in PrinterLimits.", _nonneg_int),
    Setting("relay_max_body", 1_073_741_824, "Largest request body (a G-code upload) in bytes that one "
            "relayed request may send; a larger one is answered 413.", _pos_int),
    Setting("relay_idle_seconds", 300, "Seconds a relayed stream may move no bytes either way before the "
            "relay closes it (a webcam stream or OctoPrint's push socket keeps moving).", _pos_int),
    Setting(
        "apps_builtin",
        True,
        "Whether the App Connection portal knows OctoPod and Mobileraker (and their return-URL "
        "schemes) without an admin registering them.",
        _bool,
    ),
    # --- webhooks
    Setting(
        "webhook_allow_private",
        False,
        "Let users who are not admins send webhooks to private, loopback, link-local and other "
        "addresses that are not globally routable (admins' targets may always).",
        _bool,
        runtime=True,
    ),
    Setting("webhook_concurrency", 16, "Webhook requests sent at once per process.", _pos_int),
    Setting("webhook_timeout", 15.0, "Seconds a webhook receiver has to answer.", _pos_float),
    Setting(
        "webhook_retry_schedule",
        [5, 300, 1800, 7200, 18000, 36000, 36000],
        "Seconds to wait before each retry of a failed webhook (comma-separated), "
        "each varied by 20% either way. After the last, the delivery is marked failed.",
        _seconds_list,
    ),
    Setting(
        "webhook_lease",
        60.0,
        "Seconds a process holds a claimed delivery; a killed process's claims return to "
        "the queue after this. Herald uses at least twice the timeout plus one second.",
        _pos_float,
    ),
    Setting(
        "webhook_disable_after_days",
        5.0,
        "Disable a webhook target that has failed continuously for this many days.",
        _pos_float,
    ),
    Setting("webhook_retention_days", 30, "Keep webhook deliveries and their attempts this many days.", _pos_int),
    Setting(
        "webhook_poll_interval",
        1.0,
        "Seconds between looks for due webhook deliveries (new events wake the worker at once).",
        _pos_float,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with ``load_settings()`` or ``Settings.build(**overrides)``."""

    values: Mapping[str, Any]
    from_env: frozenset[str] = field(default_factory=frozenset)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    # derived values -------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.values["data_dir"]).expanduser().resolve()

    @property
    def db_url(self) -> str:
        url = self.values["database_url"]
        if url:
            if url.startswith("postgresql://"):
                url = "postgres://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite://{self.data_path / 'herald.sqlite3'}"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite:")

    @property
    def base_url(self) -> str:
        url = self.values["public_url"]
        if url:
            return url.rstrip("/")
        host = self.values["host"]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.values['port']}"

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def replace(self, **changes: Any) -> Settings:
        return Settings.build(base=self, **changes)

    @classmethod
    def build(cls, base: Settings | None = None, **overrides: Any) -> Settings:
        """Settings from defaults (or ``base``) plus keyword overrides; used by tests."""
        values = dict(base.values) if base else {s.name: s.default for s in SETTINGS}
        for name, raw in overrides.items():
            values[name] = _parse(name, raw)
        return cls(values=values, from_env=base.from_env if base else frozenset())


def _parse(name: str, raw: Any) -> Any:
    setting = _BY_NAME.get(name)
    if setting is None:
        raise SettingsError(f"unknown setting {name!r}")
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name} (HERALD_{name.upper()}): {exc}") from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file, then ``HERALD_*`` environment variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}

    data_dir = environ.get("HERALD_DATA_DIR", values["data_dir"])
    config_path = environ.get("HERALD_CONFIG")
    path = Path(config_path) if config_path else Path(data_dir).expanduser() / "herald.toml"
    if config_path and not path.is_file():
        raise SettingsError(f"HERALD_CONFIG points to {path}, which is not a file")
    if path.is_file():
        try:
            table = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        table = table.get("herald", table)
        for name, raw in table.items():
            values[name] = _parse(name, raw)

    from_env = set()
    for setting in SETTINGS:
        key = f"HERALD_{setting.name.upper()}"
        if key in environ:
            values[setting.name] = _parse(setting.name, environ[key])
            from_env.add(setting.name)
    return Settings(values=values, from_env=frozenset(from_env))


def settings_markdown() -> str:
    """The settings table as Markdown, for docs/settings.md."""
    lines = ["| Environment variable | Default | Meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = ", ".join(map(str, s.default)) if isinstance(s.default, list) else s.default
        default = f"`{default}`" if default not in ("", []) else "(empty)"
        extra = " Can be changed by an admin in the web UI." if s.runtime else ""
        lines.append(f"| `HERALD_{s.name.upper()}` | {default} | {s.help}{extra} |")
    return "\n".join(lines) + "\n"


__all__ = ["SETTINGS", "Setting", "Settings", "SettingsError", "load_settings"]
