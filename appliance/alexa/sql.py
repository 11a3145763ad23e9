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
