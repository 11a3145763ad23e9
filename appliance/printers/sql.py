"""The printers area's hand-written SQL, SQLite and PostgreSQL side by side.

These run on the hot path (the status flush writes thousands of rows a minute on a
large install), where building the statement through the ORM cost as much as running it.
"""

from __future__ import annotations

from appliance.core.db import Statement

# The latest status of one printer; one row per dirty printer, in one transaction.
FLUSH_STATUS = Statement(
    sqlite=("UPDATE printers SET status=?, last_seen_at=?, status_updated_at=?, "
            "purge_warned_at=NULL WHERE id=?"),
    postgres=("UPDATE printers SET status=$1::jsonb, last_seen_at=$2, status_updated_at=$3, "
              "purge_warned_at=NULL WHERE id=$4"),
)

# A chart point, unless the printer was removed meanwhile (perhaps by another process).
INSERT_SAMPLE = Statement(
    sqlite=("INSERT INTO status_samples (printer_id, taken_at, temperatures, progress) "
            "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM printers WHERE id=?1)"),
    postgres=("INSERT INTO status_samples (printer_id, taken_at, temperatures, progress) "
              "SELECT $1::varchar, $2, $3::jsonb, $4 WHERE EXISTS (SELECT 1 FROM printers WHERE id=$1::varchar)"),
)


def existing_printers(count: int) -> str:
    """Which of ``count`` printer ids still exist (``?`` placeholders, for ``db.query_dicts``)."""
    return f"SELECT id FROM printers WHERE id IN ({', '.join('?' * count)})"


# The live dashboard's notifications to other processes (PostgreSQL only: SQLite has one process).
NOTIFY_LIVE = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
