"""The webhooks area's hand-written SQL, SQLite and PostgreSQL side by side."""

from __future__ import annotations

CLAIMED_COLUMNS = ("id", "target_id", "attempts", "webhook_id", "url", "method", "headers", "body_kind", "body",
                   "snapshot_key", "snapshot_path", "sequence", "event_type", "occurred_at", "sealed")


def claim(postgres: bool) -> str:
    """Claim due deliveries in one statement: ``$n`` placeholders and ``FOR UPDATE SKIP LOCKED``
    on PostgreSQL, ``?n`` on SQLite (where the claim runs in a short immediate transaction).

    Parameters: 1 locked_until, 2 worker id, 3 now, 4 rows per target, 5 limit.
    """
    p = (lambda i: f"${i}") if postgres else (lambda i: f"?{i}")
    lock = " FOR UPDATE OF d SKIP LOCKED" if postgres else ""
    due = (f"((X.status = 'pending' AND X.next_attempt_at <= {p(3)}) "
           f"OR (X.status = 'in_flight' AND X.locked_until <= {p(3)}))")
    return f"""
UPDATE webhook_deliveries SET status = 'in_flight', locked_until = {p(1)}, claimed_by = {p(2)}
WHERE id IN (
  SELECT d.id FROM webhook_deliveries d
  WHERE d.id IN (
    SELECT ranked.id FROM (
      SELECT c.id, ROW_NUMBER() OVER (PARTITION BY c.target_id ORDER BY c.id) AS rn
      FROM webhook_deliveries c JOIN webhook_targets t ON t.id = c.target_id
      WHERE t.enabled AND {due.replace("X.", "c.")}
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries f WHERE f.target_id = c.target_id
                        AND f.status = 'in_flight' AND f.locked_until > {p(3)})
    ) ranked WHERE ranked.rn <= {p(4)}
  ) AND {due.replace("X.", "d.")}
  ORDER BY d.id LIMIT {p(5)}{lock}
)
RETURNING {", ".join(CLAIMED_COLUMNS)}
"""
