"""The ``tessera`` command: run a pipeline, or the demo, with exit codes 0 ok, 2 bad input, 3 gate, 1 other."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from pydantic import BaseModel

from flows.domains import domains
from flows.options import add_options, parameters
from flows.params import DASK, OUT
from tasks.errors import BadInputError, exit_code_for


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line and exit code 2, like every other error (``--help`` shows the usage)."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {self.prog}: {message}\n")


def _name(what: str, option: str) -> Callable[[str], str]:
    """An argparse type: a value that is safe as one path part (run ids, model names), else exit 2."""

    def check(text: str) -> str:
        from tasks.errors import BadInputError
        from tasks.store import check_name

        try:
            return check_name(text, what, option)
        except BadInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return check


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tessera", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one pipeline")
    parsers = run.add_subparsers(dest="domain", required=True)
    for domain in domains().values():
        add_options(parsers.add_parser(domain.name, help=domain.summary), domain.load_params())
    models = commands.add_parser("models", help="see the model registry and choose its champions")
    actions = models.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every model, its versions and which one is the champion")
    listing.add_argument("name", nargs="?", type=_name("model name", "NAME"), help="one model only")
    show = actions.add_parser("show", help="a version's model card (default: the champion's)")
    show.add_argument("name", type=_name("model name", "NAME"))
    show.add_argument("version", nargs="?", type=_name("model version", "VERSION"))
    promote = actions.add_parser("promote", help="make a version the champion (e.g. back to an earlier one)")
    promote.add_argument("name", type=_name("model name", "NAME"))
    promote.add_argument("version", type=_name("model version", "VERSION"))
    export = actions.add_parser("export", help="write a version (default: the champion) as a bundle to score with "
                                "elsewhere: tessera run DOMAIN --bundle model.zip")
    export.add_argument("name", type=_name("model name", "NAME"))
    export.add_argument("--version", type=_name("model version", "--version"), help="default: the champion")
    export.add_argument("--to", required=True, metavar="model.zip", help="the bundle to write")
    for sub in (listing, show, promote, export):
        sub.add_argument("--out", help="data root (default: $TESSERA_DATA or ./data)")
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
    demo = commands.add_parser("demo", help="run every pipeline on embedded synthetic data")
    demo.add_argument("--out", help=OUT)
    demo.add_argument("--dask-address", help=DASK)
    demo.add_argument("--debug", action="store_true", help="show tracebacks")
    serve = commands.add_parser("serve", help="start a Prefect server (unless PREFECT_API_URL names one) and "
                                "serve every pipeline's deployment")
    clean = commands.add_parser("clean", help="remove old run folders and their Prefect results (never a "
                                "champion's run or the latest run of an area)")
    clean.add_argument("--keep", type=int, required=True, help="newest runs kept in each domain")
    clean.add_argument("--older-than", type=float, metavar="DAYS", help="remove only runs older than this")
    clean.add_argument("--dry-run", action="store_true", help="only say what would go")
    clean.add_argument("--out", help=OUT)
    clean.add_argument("--debug", action="store_true", help="show tracebacks")
    project = commands.add_parser("prefect-yaml", help="print prefect.yaml: the deployments of serve, for a work "
                                  "pool (prefect deploy --all)")
    project.add_argument("--pool", default="tessera", help="work pool name (default: tessera)")
    project.add_argument("--debug", action="store_true", help="show tracebacks")
    serve.add_argument("--port", type=int, default=4200)
    serve.add_argument("--limit", type=int, default=4, help="flow runs at once")
    serve.add_argument("--debug", action="store_true")
    return parser


class _NoTraceback(logging.Filter):
    """Keep the one-line message of a failed task or flow, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        if isinstance(record.msg, str) and "Traceback (most recent call last)" in record.msg:
            record.msg = record.msg.split("Traceback (most recent call last)")[0].rstrip()
        return True


def _configure_logging(debug: bool) -> None:
    from tasks.compute import quiet_dask_logs

    quiet_dask_logs()
    if debug:
        return
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine", ""):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_NoTraceback())


def _summary(result: dict) -> str:
    lines = [f"{result['flow']} run {result['run_id']}: {result['status']}", f"  outputs: {result['dir']}"]
    counts = result["counts"]
    lines.append(f"  records: {counts['records_in']} in, {counts['records_valid']} valid, "
                 f"{counts['records_quarantined']} quarantined")
    from tasks.quality import warning_messages

    lines += [f"  {line}" for gate in result.get("quality") or [] for line in warning_messages(gate)]
    m = result.get("metrics") or {}
    if "accuracy" in m:
        base = ", ".join(f"{k} {v.get('accuracy', 0):.3f}" for k, v in result["baselines"].items())
        lines.append(f"  test accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f} (baseline accuracy: {base})")
    elif "rmse" in m:
        base = ", ".join(f"{k} {v['rmse']:.5f}" for k, v in result["baselines"].items())
        lines.append(f"  walk-forward RMSE {m['rmse']:.5f}, directional accuracy {m['directional_accuracy']:.3f}, "
                     f"gain vs buy-and-hold {m['gain_vs_buy_and_hold']:+.3f} (baseline RMSE: {base})")
    if result.get("model"):
        model = result["model"]
        scored = model.get("scored_with")
        lines.append(f"  model {model['name']} {model['version']}{' (promoted)' if model.get('promoted') else ''}"
                     + (f"; outputs from the champion {scored}" if scored and scored != model["version"] else ""))
    monitor = result.get("monitor") or {}
    if monitor.get("change", {}).get("previous_run"):
        lines.append(f"  changed since {monitor['change']['previous_run']}: {monitor['change']['changed_share']:.2%}"
                     f"{'  FLAGGED' if monitor.get('flagged') else ''}")
    lines.append(f"  report: {result['dir']}/report.html")
    return "\n".join(lines)


def _one_line_errors(action: Callable[[], object], debug: bool) -> int:
    """Run ``action``; a failure becomes one line on stderr and its exit code (the traceback with --debug)."""
    try:
        action()
    except Exception as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    return 0


def _run(flow: Callable[[BaseModel], dict], params: BaseModel, debug: bool) -> int:
    return _one_line_errors(lambda: print(_summary(flow(params))), debug)


def models_command(args: argparse.Namespace) -> int:
    """``tessera models list|show|promote|export``: read and fix the registry by hand, export a bundle."""
    return _one_line_errors(lambda: _models(args), args.debug)


def _models(args: argparse.Namespace) -> None:
    from models.registry import ModelRegistry
    from tasks.metrics import headline

    registry = ModelRegistry(args.out)
    if args.action == "list":
        for name in [args.name] if args.name else registry.names():
            champion = registry.champion_version(name)
            print(f"{name} (champion {champion or 'none'})")
            for version in registry.versions(name):
                card = registry.card(name, version)
                print(f"  {'*' if version == champion else ' '} {version}  {card.created}  "
                      f"{headline(card.metrics) or ''}")
    elif args.action == "show":
        version = args.version or registry.champion_version(args.name)
        if version is None:
            raise BadInputError(f"model {args.name!r} has no champion; name a version (tessera models list)")
        print(registry.card(args.name, version).model_dump_json(by_alias=True, indent=2))
    elif args.action == "export":
        from models.bundle import export_bundle

        manifest = export_bundle(registry, args.name, args.to, version=args.version)
        print(f"wrote {args.to}: model {manifest['name']} {manifest['version']} ({manifest['architecture']}, "
              f"{len(manifest['files'])} files); score with it: tessera run <domain> --bundle {args.to}")
    else:
        registry.promote(args.name, args.version)
        print(f"{args.name}: {args.version} is the champion")


def clean_command(args: argparse.Namespace) -> int:
    """``tessera clean``: remove old runs, print each and what was freed."""
    if args.keep < 0 or (args.older_than is not None and args.older_than < 0):
        print("error: --keep and --older-than take a number >= 0", file=sys.stderr)
        return 2
    return _one_line_errors(lambda: _clean(args), args.debug)


def _clean(args: argparse.Namespace) -> None:
    from tasks.retention import clean, summary

    verdicts, freed = clean(args.out, keep=args.keep, older_than_days=args.older_than, dry_run=args.dry_run)
    for verdict in verdicts:
        if not verdict.keep:
            print(f"{'would remove' if args.dry_run else 'removed'} {verdict.domain}/{verdict.run_id} "
                  f"(started {verdict.started[:10]})")
    print(summary(verdicts, freed, dry_run=args.dry_run))


def demo(*, out: str | None, dask_address: str | None, debug: bool) -> int:
    """Every domain's demo runs on its synthetic set: for satellite, two monitoring runs of one area two months
    apart (the second reports change and drift)."""
    for domain in domains().values():
        for given in domain.demo:
            code = _run(domain.load_flow(), domain.load_params()(**given, out=out, dask_address=dask_address), debug)
            if code:
                return code
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _configure_logging(args.debug)
    if args.command == "serve":
        from deployments.serve import serve_all

        try:
            serve_all(port=args.port, limit=args.limit)
        except KeyboardInterrupt:
            pass
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "prefect-yaml":
        from deployments.project import prefect_yaml

        print(prefect_yaml(args.pool), end="")
        return 0
    if args.command == "clean":
        return clean_command(args)
    if args.command == "models":
        return models_command(args)
    if args.command == "demo":
        return demo(out=args.out, dask_address=args.dask_address, debug=args.debug)
    domain = domains()[args.domain]
    given = {k: v for k, v in vars(args).items() if k not in ("command", "domain", "debug")}
    try:
        params = parameters(domain.load_params(), given)
    except BadInputError as exc:
        parser.error(f"run {domain.name}: {exc}")
    return _run(domain.load_flow(), params, args.debug)


if __name__ == "__main__":
    sys.exit(main())
