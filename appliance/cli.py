"""The ``herald`` command: serve, create-admin, setup-link, purge, backup."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from appliance import __version__
from appliance.core.filemodes import private_file
from appliance.core.herald import herald_of
from appliance.core.settings import Settings, SettingsError, load_settings

log = logging.getLogger("appliance.cli")


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=getattr(logging, str(settings.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def _with_database(settings: Settings, job):
    from appliance.core.db import close_database, open_database

    await open_database(settings)
    try:
        return await job()
    finally:
        await close_database()


# --- serve -------------------------------------------------------------------------


def migrate_apart(settings: Settings) -> int:
    """Bring the schema up to date in a child process; 0 when done, 1 when it failed.

    Tortoise builds the project state of each migration to apply it: in the serving process that
    memory stayed taken after the migrations (freed to Python's allocator, too fragmented to go back
    to the system) -- about 38 MiB on a fresh database, as at the Pi image's first boot, and 3 MiB
    when nothing was pending (scripts/bench_memory.py, docs/benchmarks.md). A forked child's memory
    goes back at its exit. Where there is no fork, they run here as before.
    """
    from appliance.core.db import apply_migrations

    if not hasattr(os, "fork"):
        asyncio.run(apply_migrations(settings))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()  # or what is buffered would be written twice, once by the child
    pid = os.fork()
    if pid == 0:  # the child: migrate, then leave without running the parent's exit handlers
        code = 1
        try:
            asyncio.run(apply_migrations(settings))
            code = 0
        except BaseException:
            log.exception("The database schema could not be brought up to date")
        finally:
            logging.shutdown()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        log.error("Migrations did not finish (%s): not serving",
                  f"exit code {code}" if code > 0 else f"signal {-code}")
        return 1
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from hypercorn.config import Config

    if migrate_apart(settings):
        return 1
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}" if ":" not in settings.host else f"[{settings.host}]:{settings.port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 10.0
    # Longer than any pause between a plugin's calls (a link poll every 5 s, a status
    # every 30-60 s): with hypercorn's default of 5 s, an idle connection was closed just
    # as the plugin's next link poll reused it, and the answer carrying the key was lost.
    config.keep_alive_timeout = 75.0
    # Request headers that trickle are bounded by the keep-alive timeout above (hypercorn's idle
    # timer runs until a request's headers are in); a body that trickles by the app's own deadline
    # (appliance.core.slowbodies). The read timeout, off by default, would also close a connection
    # whose client only receives: a relayed webcam stream or a long download (docs/relay.md).
    config.read_timeout = settings.idle_read_seconds or None
    # WebSocket clients that only listen (a relayed OctoPrint push socket, OctoPod) send nothing
    # of their own: Herald's pings make them answer, so a read timeout, when set, leaves them open.
    idle = settings.idle_read_seconds
    config.websocket_ping_interval = min(15.0, idle / 2) if idle else 15.0
    if settings.workers > 1:
        if settings.is_sqlite:
            log.error("HERALD_WORKERS > 1 needs PostgreSQL: SQLite allows one writer process.")
            return 2
        from hypercorn.run import run

        config.application_path = "appliance.asgi:app"
        config.workers = settings.workers
        return run(config)

    from hypercorn.asyncio import serve

    from appliance.app import begin_stopping, create_app, tune_gc_for_serving

    app = create_app(settings, run_migrations=False)
    tune_gc_for_serving(app)
    shutdown = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
        async def stop_requested() -> None:
            await shutdown.wait()
            begin_stopping(app)  # end event streams now, or hypercorn waits for them

        await serve(app, config, shutdown_trigger=stop_requested)

    asyncio.run(main())
    return 0


# --- create-admin --------------------------------------------------------------------


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.accounts.users import create_user
    from appliance.core.clock import Clock
    from appliance.core.errors import HeraldError

    email = args.email or input("Email: ")
    password = args.password
    if password is None:
        password = getpass.getpass("Password (at least 12 characters): ")
        if getpass.getpass("Repeat password: ") != password:
            print("The passwords differ; nothing was created.", file=sys.stderr)
            return 1

    async def job():
        from appliance.accounts.models import SetupToken

        user = await create_user(email, password, is_admin=True, verified=True, clock=Clock())
        await SetupToken.all().delete()  # the first-run setup link is no longer needed
        return user

    try:
        user = asyncio.run(_with_database(settings, job))
    except HeraldError as exc:
        print(f"Not created: {exc.message}", file=sys.stderr)
        return 1
    print(f"Admin {user.email} created.")
    return 0


# --- setup-link ----------------------------------------------------------------------

# `herald setup-link` exits with this when an admin exists (the link is gone): a script
# (the Pi image's herald-setup-link) tells "nothing to show" from a failure (1, 2).
ADMIN_EXISTS = 3


def cmd_setup_link(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.accounts.setup import ensure_setup_link
    from appliance.app import create_app

    # The same link Herald logs at start (its token is kept encrypted with secret.key), made
    # now if Herald has not made it yet; the database must exist (Herald started once).
    herald = herald_of(create_app(settings, run_migrations=False))

    async def job():
        return await ensure_setup_link(herald)

    link = asyncio.run(_with_database(settings, job))
    if link is None:
        print("An admin account exists, so there is no setup link any more: log in, or make "
              "another admin with `herald create-admin`.", file=sys.stderr)
        return ADMIN_EXISTS
    print(link)
    return 0


# --- purge ---------------------------------------------------------------------------


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.app import create_app
    from appliance.printers.maintenance import purge

    herald = herald_of(create_app(settings, run_migrations=False))

    async def job():
        return await purge(herald, server_running=True)

    result = asyncio.run(_with_database(settings, job))
    print(f"Removed {len(result.printers_removed)} printer(s) silent for {settings.purge_after_days} days "
          f"(0 disables), warned about {len(result.printers_warned)}; removed {result.events_removed} "
          f"event(s) older than {settings.event_retention_days} days, {result.samples_removed} chart "
          f"sample(s) and {result.link_requests_removed} expired link request(s).")
    return 0


# --- backup --------------------------------------------------------------------------


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    target = Path(args.file)
    if not settings.is_sqlite:
        print("herald backup copies the SQLite database; for PostgreSQL use pg_dump "
              "and keep secret.key (see docs/deploy.md, \"Backup and restore (PostgreSQL)\").", file=sys.stderr)
        return 2
    source = Path(settings.db_url.removeprefix("sqlite://"))
    if not source.exists():
        print(f"No database at {source}; nothing to back up.", file=sys.stderr)
        return 1
    if target.exists() and not args.force:
        print(f"{target} exists; pass --force to overwrite it.", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    # SQLite's online backup API copies a consistent snapshot while Herald keeps running.
    private_file(tmp)  # a backup holds every account: as private as the database
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(tmp) as dst:
        src.backup(dst)
    tmp.replace(target)
    print(f"Backed up {source} to {target}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald",
        description="Herald: a self-hosted hub for OctoPrint printers. "
        "Settings come from HERALD_* environment variables (see docs/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"herald {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="apply database migrations and serve the web UI and API",
                           description="Apply migrations, then serve on HERALD_HOST:HERALD_PORT.")
    serve.set_defaults(func=cmd_serve)

    admin = sub.add_parser("create-admin", help="create an admin account",
                           description="Create an admin account (prompts for what is not given).")
    admin.add_argument("--email", help="the admin's email address")
    admin.add_argument("--password", help="the password (prompted for when left out)")
    admin.set_defaults(func=cmd_create_admin)

    setup = sub.add_parser("setup-link", help="print the one-time link that creates the first admin",
                           description="Print the one-time setup link (the one Herald logs at start) "
                           "while no admin exists. With an admin it prints why there is none to "
                           f"stderr and exits with {ADMIN_EXISTS}.")
    setup.set_defaults(func=cmd_setup_link)

    purge = sub.add_parser("purge", help="remove long-silent printers and old events now",
                           description="Do now what Herald's background purge does every hour: "
                           "remove printers silent for HERALD_PURGE_AFTER_DAYS days (warning their "
                           "owners from HERALD_PURGE_WARN_DAYS), events older than "
                           "HERALD_EVENT_RETENTION_DAYS days, old chart samples and expired link "
                           "requests. Safe to run while Herald serves.")
    purge.set_defaults(func=cmd_purge)

    backup = sub.add_parser("backup", help="copy the SQLite database to FILE while Herald runs",
                            description="Make a consistent copy of the SQLite database with "
                            "SQLite's online backup API. Restore by stopping Herald and putting "
                            "the copy in place of herald.sqlite3 in the data directory.")
    backup.add_argument("file", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    backup.set_defaults(func=cmd_backup)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    from appliance.core.db import NotADatabase, check_sqlite_file

    try:
        check_sqlite_file(settings)  # every command opens the database
    except NotADatabase as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    return args.func(settings, args) or 0


if __name__ == "__main__":
    sys.exit(main())
