"""Log a finished run to MLflow: its parameters, metrics beside their baselines, gate outcomes, report, figures
and model with its card.

Off unless ``--mlflow URI`` or ``MLFLOW_TRACKING_URI`` names a tracking server; mlflow is imported only then.
The MLflow run is tagged with the Prefect flow-run id, and its id goes back into run.json.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

from tasks.runs import RunFiles
from tasks.store import glob, read_bytes

log = logging.getLogger(__name__)

MAX_PARAM = 6000  # MLflow's limit on a parameter value


def tracking_uri(option: str | None) -> str | None:
    """The tracking URI a run logs to: the option, else ``MLFLOW_TRACKING_URI``, else None (off)."""
    return option or os.environ.get("MLFLOW_TRACKING_URI") or None


def flat(values: dict, prefix: str = "") -> dict:
    """Nested dicts as one level of dotted keys."""
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat(value, f"{name}.")
        else:
            out[name] = value
    return out


def run_metrics(run: dict) -> dict[str, float]:
    """The numbers of run.json worth a chart: the model's metrics, each baseline's under ``baseline.<name>.``,
    the record counts, the stage times and each gate's outcome (1 passed, 0 failed)."""
    numbers = flat(run["metrics"] or {})
    for name, metrics in (run["baselines"] or {}).items():
        numbers |= {f"baseline.{name}.{k}": v for k, v in flat(metrics).items()}
    numbers |= {f"records.{k}": v for k, v in run["counts"].items()}
    numbers |= {f"seconds.{name}": stage["seconds"] for name, stage in run["stages"].items()}
    numbers |= {f"gate.{q['suite']}.success": q["success"] for q in run["quality"]}
    return {re.sub(r"[^\w\-. /]", "_", k): float(v) for k, v in numbers.items()
            if isinstance(v, int | float) and v == v}


def _history(run_dir: Path) -> dict[str, list[float]]:
    training = RunFiles(run_dir).training
    if not training.exists():
        return {}
    history = json.loads(training.read_text()).get("history") or {}
    return {k: v for k, v in history.items() if isinstance(v, list) and v and
            all(isinstance(x, int | float) for x in v)}


def _prefect_flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return flow_run.id
    except Exception:
        return None


def log_run(run: dict, uri: str) -> dict:
    """Log ``run`` (run.json as a dict, its folder still local) to the MLflow server at ``uri``; the MLflow
    experiment is ``MLFLOW_EXPERIMENT_NAME`` or ``tessera-<flow>``. Returns what run.json keeps of it."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"tessera-{run['flow']}"
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    tags = {"tessera.flow": run["flow"], "tessera.run_id": run["run_id"], "tessera.status": run["status"],
            "tessera.run_uri": run["uri"]}
    if flow_run_id := _prefect_flow_run_id():
        tags["prefect.flow_run_id"] = flow_run_id
    if run["model"]:
        tags |= {"tessera.model": f"{run['model']['name']}:{run['model']['version']}"}
    created = client.create_run(experiment_id, run_name=run["run_id"], tags=tags)
    run_id = created.info.run_id
    stamp = created.info.start_time
    params = [Param(k, str(v)[:MAX_PARAM]) for k, v in flat(run["parameters"]).items() if v is not None]
    metrics = [Metric(k, v, stamp, 0) for k, v in run_metrics(run).items()]
    run_dir = Path(run["dir"])
    metrics += [Metric(f"history.{k}", float(x), stamp, step) for k, v in _history(run_dir).items()
                for step, x in enumerate(v)]
    for start in range(0, len(metrics), 1000):  # MLflow's limits per call: 1000 metrics, 100 parameters
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start:start + 100])
    client.log_batch(run_id, tags=[RunTag("mlflow.note.content", _note(run))])
    client.log_dict(run_id, run["quality"], "quality.json")
    files = RunFiles(run_dir)
    for path in (files.record, files.report, files.training):
        if path.exists():
            client.log_artifact(run_id, str(path))
    if files.figures.exists():
        client.log_artifacts(run_id, str(files.figures), "figures")
    if run["model"] and run["model"].get("uri"):
        _log_model(client, run_id, run["model"]["uri"])
    client.set_terminated(run_id, "FINISHED" if run["status"] == "completed" else "FAILED")
    return {"run_id": run_id, "experiment_id": experiment_id, "experiment": experiment_name,
            "tracking_uri": uri, "url": _url(uri, experiment_id, run_id)}


def _log_model(client, run_id: str, model_uri: str) -> None:
    """The model's registry folder (weights, card.json, and what scoring needs beside them) as ``model/``."""
    with tempfile.TemporaryDirectory() as folder:
        for uri in glob(f"{model_uri.rstrip('/')}/*"):
            name = uri.replace(os.sep, "/").rsplit("/", 1)[-1]
            if not name.startswith("."):
                (Path(folder) / name).write_bytes(read_bytes(uri))
        client.log_artifacts(run_id, folder, "model")


def _note(run: dict) -> str:
    from tasks.metrics import headline

    return f"tessera {run['flow']} run `{run['run_id']}`: {run['status']}. {headline(run['metrics'] or {})}"


def _url(uri: str, experiment_id: str, run_id: str) -> str | None:
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}" if uri.startswith("http") else None


def track(run: dict, option: str | None) -> dict | None:
    """Log the run when tracking is on; a tracking server that fails is reported in run.json, and never fails a
    run whose own work is done."""
    uri = tracking_uri(option)
    if uri is None:
        return None
    try:
        logged = log_run(run, uri)
    except ImportError:
        log.warning("run %s is not logged to MLflow at %s: mlflow is not installed; pip install 'tessera[mlflow]'",
                    run["run_id"], uri)
        return {"tracking_uri": uri, "error": "mlflow is not installed: pip install 'tessera[mlflow]'"}
    except Exception as exc:
        log.warning("could not log run %s to MLflow at %s: %s", run["run_id"], uri, exc)
        return {"tracking_uri": uri, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    from tasks.reporting import publish_markdown

    where = f"[{logged['run_id']}]({logged['url']})" if logged["url"] else f"`{logged['run_id']}`"
    publish_markdown(f"{run['flow']}-mlflow", f"MLflow run {where} in experiment `{logged['experiment']}` at "
                     f"`{uri}`", f"The MLflow run of {run['flow']} run {run['run_id']}")
    return logged
