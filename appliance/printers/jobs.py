"""Job history: the last JOBS_KEPT jobs per printer, from print events and the status's last_job."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise.functions import Max

from appliance.printers.models import Event, Job

JOBS_KEPT = 50
_RESULTS = {"print.done": "completed", "print.failed": "failed", "print.cancelled": "cancelled"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _file_of(payload: dict[str, Any] | None) -> str | None:
    payload = payload or {}
    name = payload.get("name") or payload.get("path")
    return str(name)[:255] if name else None


async def apply_event_to_jobs(event: Event, conn) -> None:
    """Open a job on print.started, close it on print.done / failed / cancelled."""
    if event.type == "print.started":
        # A job left open (its end event never came) is closed without a result.
        await Job.filter(printer_id=event.printer_id, ended_at__isnull=True).using_db(conn).update(
            ended_at=event.occurred_at)
        await Job.create(printer_id=event.printer_id, file=_file_of(event.payload),
                         started_at=event.occurred_at, using_db=conn)
        await _trim(event.printer_id, conn)
        return
    result = _RESULTS.get(event.type)
    if result is None:
        return
    duration = _number((event.payload or {}).get("time"))
    job = await (Job.filter(printer_id=event.printer_id, result__isnull=True, ended_at__isnull=True)
                 .using_db(conn).order_by("-id").first())
    if job is None:
        start = event.occurred_at - timedelta(seconds=duration) if duration is not None else None
        await Job.create(printer_id=event.printer_id, file=_file_of(event.payload), started_at=start,
                         ended_at=event.occurred_at, duration=duration, result=result, using_db=conn)
        await _trim(event.printer_id, conn)
        return
    if duration is None and job.started_at is not None:
        duration = max(0.0, (event.occurred_at - job.started_at).total_seconds())
    job.ended_at, job.duration, job.result = event.occurred_at, duration, result
    await job.save(using_db=conn, update_fields=["ended_at", "duration", "result"])


def _same_job(job: Job, file: str | None, result: str, duration: float | None) -> bool:
    """Whether a recorded job is the one a status's last_job describes. The plugin rounds
    the duration to whole seconds, the event carries OctoPrint's own (7.2 -> 7)."""
    if job.file != file or job.result != result:
        return False
    return duration is None or job.duration is None or abs(job.duration - duration) <= 1.0


async def _newest(chunk: list[str], **filters: Any) -> dict[str, Job]:
    ids = await (Job.filter(printer_id__in=chunk, **filters).group_by("printer_id")
                 .annotate(latest=Max("id")).values_list("latest", flat=True))
    return {job.printer_id: job for job in await Job.filter(id__in=list(ids))} if ids else {}


async def apply_last_jobs(last_jobs: dict[str, tuple[dict[str, Any], datetime]]) -> int:
    """Complete the history from statuses' last_job where the events did not reach Herald.

    ``last_jobs`` maps printer id to (last_job, seen_at). The last_job is the printer's
    most recent finished job, so it is known when it matches the newest job with a result
    (a newer job may be running meanwhile); a job left open with its file is completed;
    only a job not known at all is written. Every status after a restart brings its
    last_job again: matching this way records each real job once. Batched: two queries
    per 500 printers. Returns the number of jobs added or completed.
    """
    wanted = {pid: pair for pid, pair in last_jobs.items() if pair[0].get("result") is not None}
    ids = list(wanted)
    changed = 0
    new_jobs: list[Job] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        latest = await _newest(chunk)
        finished = await _newest(chunk, result__not_isnull=True)
        for printer_id in chunk:
            last_job, seen_at = wanted[printer_id]
            file, result = last_job.get("file"), last_job["result"]
            duration = _number(last_job.get("duration"))
            known = finished.get(printer_id)
            if known is not None and _same_job(known, file, result, duration):
                continue  # already known, from the events or an earlier status
            job = latest.get(printer_id)
            if job is not None and job.file == file and job.result is None and job.ended_at is None:
                # The end event went missing: complete the job.
                job.result = result
                job.ended_at = seen_at
                job.duration = duration if duration is not None else job.duration
                await job.save(update_fields=["result", "ended_at", "duration"])
                changed += 1
                continue
            # Neither the start nor the end reached Herald: the job as the status tells it.
            # Its start is unknown (the end is only known to be before this status).
            new_jobs.append(Job(printer_id=printer_id, file=file, started_at=None, ended_at=seen_at,
                                duration=duration, result=result))
    if new_jobs:
        await Job.bulk_create(new_jobs, batch_size=500)
        changed += len(new_jobs)
        for printer_id in {job.printer_id for job in new_jobs}:
            await _trim(printer_id, None)
    return changed


async def _trim(printer_id: str, conn) -> None:
    query = Job.filter(printer_id=printer_id)
    if conn is not None:
        query = query.using_db(conn)
    old = await query.order_by("-id").offset(JOBS_KEPT).values_list("id", flat=True)
    if old:
        delete = Job.filter(id__in=list(old))
        if conn is not None:
            delete = delete.using_db(conn)
        await delete.delete()


async def recent_jobs(printer_id: str) -> list[Job]:
    return await Job.filter(printer_id=printer_id).order_by("-id").limit(JOBS_KEPT)
