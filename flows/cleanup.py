"""Retention as a flow: the weekly ``cleanup`` deployment removes old run folders and their Prefect results."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.params import OUT


class CleanupParams(BaseModel):
    """Which runs to keep; every other finished run goes, with its Prefect results."""

    keep: int = Field(10, ge=0, description="newest runs kept in each domain")
    older_than: float | None = Field(30, ge=0, description="remove only runs older than this many days "
                                     "(empty: any age)")
    dry_run: bool = Field(False, description="only say what would go and how much it would free")
    out: str | None = Field(None, description=OUT)


@flow(name="cleanup")
def cleanup(params: CleanupParams = CleanupParams()) -> dict:
    """Remove the old runs; a run that trained a champion or is the latest of its area always stays."""
    from tasks.reporting import publish_markdown
    from tasks.retention import clean, summary

    verdicts, freed = clean(params.out, keep=params.keep, older_than_days=params.older_than,
                            dry_run=params.dry_run)
    line = summary(verdicts, freed, dry_run=params.dry_run)
    get_run_logger().info(line)
    removed = [{"domain": v.domain, "run": v.run_id, "started": v.started} for v in verdicts if not v.keep]
    publish_markdown("cleanup", "\n".join([line, ""] + [f"- {r['domain']}/{r['run']} (started {r['started'][:10]})"
                                                       for r in removed]), "runs removed by the cleanup")
    return {"removed": removed, "freed_bytes": freed, "summary": line}
