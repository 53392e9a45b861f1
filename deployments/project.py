"""The project's ``prefect.yaml`` for a Prefect work pool, written from the same deployment definitions as
``tessera serve`` (deployments/serve.py): ``tessera prefect-yaml > prefect.yaml``, then ``prefect deploy --all``.

Each deployment loads its flow by module path, so any worker whose Python has tessera installed runs it; with no
``pull`` section, ``prefect deploy`` makes the folder it runs in the runs' working directory (a process worker on
this machine). ``--pool`` and ``--job-variable`` of ``prefect deploy`` retarget the same file at a Docker or
Kubernetes pool.
"""

from __future__ import annotations

import yaml

from deployments.serve import SCHEDULE_TIMEZONE, deployment_definitions

POOL = "tessera"
HEADER = ("# Written by `tessera prefect-yaml` from the domain declarations (flows/domains.py); do not edit by hand.\n"
          "# prefect work-pool create tessera --type process && prefect deploy --all && prefect worker start --pool "
          "tessera\n")


def prefect_yaml(pool: str = POOL) -> str:
    """``prefect.yaml`` declaring every deployment of ``tessera serve`` for the work pool ``pool``."""
    deployments = [{
        "name": d.name,
        "entrypoint": d.entrypoint,
        "description": d.description,
        "tags": list(d.tags),
        "schedules": [{"cron": d.cron, "timezone": SCHEDULE_TIMEZONE, "active": True}] if d.cron else [],
        "work_pool": {"name": pool, "work_queue_name": None, "job_variables": {}},
    } for d in deployment_definitions()]
    project = {"name": "tessera", "build": None, "push": None, "deployments": deployments}
    return HEADER + yaml.safe_dump(project, sort_keys=False, width=120)
