"""tasks/retention.py and ``tessera clean``: old runs go with their Prefect results; the newest, a champion's run
and the latest run of an area stay."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from flows.cli import main
from tasks import retention
from tasks.store import write_json

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def run_json(root: Path, domain: str, run_id: str, day: int, **fields) -> Path:
    folder = root / domain / "runs" / run_id
    write_json({"flow": domain, "run_id": run_id, "status": "completed", "started": f"2026-11-{day:02d}T00:00:00+00:00",
                **fields}, folder / "run.json")
    (folder / "mosaic.zarr").mkdir()
    (folder / "mosaic.zarr" / "0.0").write_bytes(b"x" * 1000)
    return folder


def test_keeps_the_newest_the_champions_run_and_each_areas_latest(tmp_path: Path) -> None:
    trained = {"name": "satellite-a", "version": "v1", "trained": True}
    run_json(tmp_path, "satellite", "s1", 1, model=trained, monitor={"area": "a"})
    run_json(tmp_path, "satellite", "s2", 2, model={**trained, "version": "v2"}, monitor={"area": "a"})
    run_json(tmp_path, "satellite", "s3", 3, monitor={"area": "b"})
    run_json(tmp_path, "satellite", "s4", 4, monitor={"area": "a"})
    run_json(tmp_path, "satellite", "s5", 5, monitor={"area": "a"}, status="failed")
    write_json({"version": "v1"}, tmp_path / "models" / "satellite-a" / "promotions" / "000001.json")
    run_json(tmp_path, "market", "m1", 1)
    run_json(tmp_path, "market", "m2", 29)
    (tmp_path / "market" / "runs" / "m0").mkdir()  # no run.json: in progress or killed, never touched

    verdicts = {v.run_id: v.why for v in retention.plan(str(tmp_path), keep=1, older_than_days=7, now=NOW)}
    assert verdicts == {"s1": "trained the champion", "s2": "old", "s3": "latest run of its area",
                        "s4": "latest run of its area", "s5": "one of the newest",
                        "m1": "old", "m2": "one of the newest"}
    without_newest = {v.run_id: v.why for v in retention.plan(str(tmp_path), keep=0, older_than_days=7, now=NOW)}
    assert without_newest["m2"] == "younger than the cutoff" and without_newest["s5"] == "old"


def test_clean_removes_the_old_runs_and_the_prefect_results_naming_them(tmp_path: Path) -> None:
    root, storage = tmp_path / "data", tmp_path / "storage"
    old, new = run_json(root, "genome", "g1", 1), run_json(root, "genome", "g2", 2)
    storage.mkdir()
    for name, folder in (("a", old), ("b", new), ("c", old.with_name("g10"))):
        payload = base64.b64encode(f"pickled output {folder}/encoded.zarr".encode()).decode()
        (storage / name).write_text(json.dumps({"metadata": {}, "result": payload}))
    (storage / "broken").write_text("not a result")

    verdicts, would = retention.clean(str(root), keep=1, dry_run=True, storage=storage)
    assert old.exists() and would > 1000
    verdicts, freed = retention.clean(str(root), keep=1, storage=storage)
    assert freed == would and not old.exists() and new.exists()
    assert sorted(p.name for p in storage.iterdir()) == ["b", "broken", "c"]  # g10 is not g1
    assert retention.summary(verdicts, freed, dry_run=False).startswith("removed 1 run(s)")


def test_tessera_clean_on_real_runs_keeps_the_champions_run(tessera_run, tessera_data_root: Path, capsys) -> None:
    runs = [tessera_run("market", run_id=f"m{i}") for i in range(3)]  # m0 trains the champion, m1 and m2 reuse it
    assert [r.exit_code for r in runs] == [0, 0, 0] and runs[0].record["model"]["trained"]
    middle = str(tessera_data_root / "market" / "runs" / "m1")
    assert retention.prefect_results_naming([middle])  # its stages' cached results
    assert main(["clean", "--keep", "1", "--out", str(tessera_data_root)]) == 0
    out = capsys.readouterr().out
    assert not retention.prefect_results_naming([middle])
    assert "removed market/m1" in out and "kept 2 (1 trained the champion, 1 one of the newest)" in out
    assert [p.name for p in sorted((tessera_data_root / "market" / "runs").iterdir())] == ["m0", "m2"]
    assert main(["clean", "--keep", "-1"]) == 2


def test_the_cleanup_flow_removes_what_the_cli_would(tessera_prefect, tmp_path: Path) -> None:
    from flows.cleanup import CleanupParams, cleanup

    run_json(tmp_path, "genome", "g1", 1)
    run_json(tmp_path, "genome", "g2", 2)
    dry = cleanup(CleanupParams(keep=1, older_than=None, dry_run=True, out=str(tmp_path)))
    assert dry["summary"].startswith("would remove 1 run(s)") and (tmp_path / "genome" / "runs" / "g1").exists()
    done = cleanup(CleanupParams(keep=1, older_than=None, out=str(tmp_path)))
    assert [r["run"] for r in done["removed"]] == ["g1"] and done["freed_bytes"] > 1000
    assert sorted(p.name for p in (tmp_path / "genome" / "runs").iterdir()) == ["g2"]
