"""The Alexa path's hand-written SQL (``?`` placeholders, for ``core.db.read_dicts``, which runs
them on either database)."""

from __future__ import annotations

# The Alexa path reads with one plain SQL query: building queries through the ORM
# cost about 1 ms each on this hardware, several times the query itself, and on
# SQLite every query waits for the connection while a write transaction (the status
# flush) holds it, so one round trip instead of two also halves those waits.
# Writes still go through the models. On SQLite the read runs on the event loop's
# thread without waiting for aiosqlite's (db.read_dicts says why).
_PRINTER_COLUMNS = ("p.id AS printer_id, p.name, p.spoken_name, p.key_hash, p.last_seen_at, p.status, p.online, "
                    "p.created_at")
LINKED_ACCOUNT = (
    "SELECT t.id AS token_id, t.scope, t.expires_at, t.revoked_at, t.last_used_at, u.time_zone, "
    "u.id AS user_id, "
    + _PRINTER_COLUMNS +
    " FROM access_tokens t JOIN users u ON u.id = t.user_id"
    " LEFT JOIN printers p ON p.owner_id = t.user_id"
    " WHERE t.token_hash = ? ORDER BY p.name, p.created_at")
SINGLE_OWNER = (
    "SELECT u.time_zone, u.id AS user_id, " + _PRINTER_COLUMNS +
    " FROM users u LEFT JOIN printers p ON p.owner_id = u.id"
    " WHERE u.id = (SELECT MIN(id) FROM users WHERE is_admin = ?) ORDER BY p.name, p.created_at")


# --- durable outbound work: claimed in one statement ($n and FOR UPDATE SKIP LOCKED on
# PostgreSQL, ?n on SQLite, where one UPDATE ... RETURNING is atomic on its own)

def _placeholder(postgres: bool):
    return (lambda i: f"${i}") if postgres else (lambda i: f"?{i}")


def claim_notifications(postgres: bool) -> str:
    """Due notifications, and those a stopped process left in flight past their lease.

    Parameters: 1 locked_until, 2 claimed_by, 3 now, 4 limit.
    """
    p = _placeholder(postgres)
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    return f"""
UPDATE alexa_notifications SET status = 'in_flight', locked_until = {p(1)}, claimed_by = {p(2)},
  attempts = attempts + 1
WHERE id IN (
  SELECT id FROM alexa_notifications
  WHERE (status = 'pending' AND next_attempt_at <= {p(3)}) OR (status = 'in_flight' AND locked_until <= {p(3)})
  ORDER BY id LIMIT {p(4)}{lock}
)
RETURNING id, account_id, api_endpoint, body, attempts, expires_at, last_error
"""


def claim_reminders(postgres: bool) -> str:
    """Reminders with a change Alexa does not have yet, due and not leased by anyone.

    Parameters: 1 locked_until, 2 locked_by, 3 now, 4 limit.
    """
    p = _placeholder(postgres)
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    return f"""
UPDATE alexa_reminders SET locked_until = {p(1)}, locked_by = {p(2)}, attempts = attempts + 1
WHERE id IN (
  SELECT id FROM alexa_reminders
  WHERE applied_revision < revision AND next_attempt_at <= {p(3)}
    AND (locked_until IS NULL OR locked_until <= {p(3)})
  ORDER BY id LIMIT {p(4)}{lock}
)
RETURNING id, revision, alexa_user_id, api_endpoint, attempts, last_error
"""
