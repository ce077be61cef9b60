"""A run's scheduler job in the store: its id, recorded when the job is submitted, and the
end of an attempt whose job is gone without its worker saying how it ended.

`Store` gets these methods from `JobRecords`; they need its write transaction (``_write``),
its fully fetched reads (``_rows``), ``get_run`` and ``_insert_event``.
"""

from __future__ import annotations

import time


class JobRecords:
    """The scheduler's side of a run (mixed into `Store`)."""

    def record_job(self, run_id: str, job_id: str, message: str) -> None:
        """The job now executing the run's attempt (the run stays queued until its worker runs)."""
        with self._write() as db:
            run = self.get_run(run_id)
            db.table("runs").update(run.id, {"job_id": job_id})
            self._insert_event(run.id, "info", message, time.time())

    def end_lost_job(self, run_id: str, job_id: str, status: str, message: str) -> bool:
        """End the attempt of job `job_id` as `status` (crashed or cancelled) at its last recorded
        loss step, unless the run has ended or moved to another job meanwhile; False then."""
        now = time.time()
        with self._write() as db:
            last = self._rows("SELECT max(step) AS step FROM metrics WHERE run_id = ? AND key = 'loss'", [run_id])
            changed = db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ?, step = coalesce(?, step) "
                "WHERE id = ? AND job_id = ? AND status IN ('queued', 'running')",
                [status, now, message if status == "crashed" else None, last[0]["step"], run_id, job_id],
            ).rowcount
            if changed:
                self._insert_event(run_id, "error" if status == "crashed" else "info", message, now)
        return bool(changed)
