"""The ``tessera`` command: run a pipeline, or the demo, with exit codes 0 ok, 2 bad input, 3 gate, 1 other."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from flows.domains import domains
from models.tuning import TUNE
from tasks.errors import BadInputError, exit_code_for


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="data root for runs and models: a folder or an fsspec URL such as "
                        "s3://bucket/prefix (default: $TESSERA_DATA or ./data)")
    parser.add_argument("--dask-address", help="scheduler of an existing Dask cluster (default: a local cluster)")
    parser.add_argument("--run-id", type=_name("run id", "--run-id"),
                        help="reuse a run id to resume an interrupted run from its completed stages")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _folds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folds", type=int, default=0,
                        help="stratified k-fold cross-validation on train+val: the spread of the scores (0: off)")


def _trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibrate", choices=["platt", "isotonic"],
                        help="calibrate probabilities on the validation split (report shows before/after)")
    parser.add_argument("--mc-samples", type=int, default=0,
                        help="Monte Carlo dropout passes per prediction, for an uncertainty per prediction "
                             "(0: off; 20-50 is typical)")


def _tune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tune", type=int, default=0, metavar="N", help=TUNE)


def satellite_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=["synthetic", "local", "sentinelhub"], default="synthetic")
    p.add_argument("--input", help="folder or glob of GeoTIFF/JP2 files (--source local)")
    p.add_argument("--labels", help="label polygons (GeoPackage/GeoJSON/Shapefile) or a label raster")
    p.add_argument("--label-column", default="class", help="class column of the label polygons")
    p.add_argument("--date", help="acquisition date of the synthetic scenes (YYYY-MM-DD, default today)")
    p.add_argument("--bbox", type=_floats, help="min_lon,min_lat,max_lon,max_lat (--source sentinelhub)")
    p.add_argument("--time-from", help="start of the time range (--source sentinelhub)")
    p.add_argument("--time-to", help="end of the time range (--source sentinelhub)")
    p.add_argument("--resolution", type=float, help="grid resolution in CRS units (default: finest band)")
    p.add_argument("--crs", help="grid CRS (default: the first scene's)")
    p.add_argument("--bands", type=lambda s: s.split(","), help="bands to use, comma-separated")
    p.add_argument("--scale", type=float, help="reflectance per digital number (default: 1e-4 for integers, "
                   "1/255 for 8-bit)")
    p.add_argument("--mosaicking-order", default="leastCC", choices=["leastCC", "mostRecent", "leastRecent"],
                   help="which acquisition Sentinel Hub puts on top (--source sentinelhub)")
    p.add_argument("--mosaic", dest="mosaic_method", choices=["first", "median", "least-cloudy"], default="first")
    p.add_argument("--resampling", default="average", help="GDAL resampling: average, bilinear, nearest, ...")
    p.add_argument("--train", choices=["auto", "always", "never"], default="auto",
                   help="auto: train when no champion exists; always: train a challenger; never: score only")
    p.add_argument("--model-name", type=_name("model name", "--model-name"),
                   help="registry name (default: satellite-<area id>)")
    p.add_argument("--model", choices=["unet", "fcn"], default="unet",
                   help="U-Net (two poolings, 53 x 53 pixels of context) or the three-layer fully-convolutional "
                        "network")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--folds", type=int, default=0,
                   help="blocked spatial cross-validation over the training blocks: whole blocks held out in "
                        "turn, the spread of the scores (0: off)")
    p.add_argument("--block", type=int, default=64, help="side in pixels of the blocks of the spatial split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--two-zones", action="store_true", help="synthetic: deliver one tile in the next UTM zone")
    p.add_argument("--psi-threshold", type=float, default=0.2)
    p.add_argument("--change-threshold", type=float, default=0.05)
    p.add_argument("--fail-on-drift", action="store_true", help="end the run failed (exit 3) when flagged")
    _common(p)
    _trust(p)
    _tune(p)


def genome_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", nargs="+", help="FASTA/FASTQ (gz too) or CSV id,label,sequence files, folders "
                   "or globs (default: the synthetic set)")
    p.add_argument("--labels", help="CSV mapping id to label")
    p.add_argument("--label-from-filename", action="store_true", help="one file per class, named for it")
    p.add_argument("--length", type=int, default=200, help="pad or truncate every sequence to this length")
    p.add_argument("-k", "--k", type=int, default=4, help="k-mer size")
    p.add_argument("--padding", choices=["right", "left", "centre"], default="centre")
    p.add_argument("--model", choices=["poscnn", "cnn1d", "kmer2d"], default="poscnn",
                   help="position-aware 1D CNN (default), 1D CNN with global pooling, or 2D k-mer CNN")
    p.add_argument("--encoding", choices=["onehot", "kmer"], default="onehot",
                   help="input of the 1D CNNs: one-hot bases (default) or k-mer tokens")
    p.add_argument("--train", choices=["auto", "always", "never"], default="auto")
    p.add_argument("--model-name", default="genome", type=_name("model name", "--model-name"))
    p.add_argument("--epochs", type=int, default=20)
    _folds(p)
    p.add_argument("--augment-rc", action="store_true", help="add reverse complements to the training split")
    p.add_argument("--min-length", type=int, default=20, help="quarantine shorter sequences")
    p.add_argument("--stride", type=int, help="step of the scoring window along long sequences")
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    _trust(p)
    _tune(p)


def sentiment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", help="CSV, JSONL or Parquet of posts (default: the synthetic set)")
    p.add_argument("--text-column", help="default: text, content, post, tweet, review ...")
    p.add_argument("--label-column", help="default: label, sentiment, category ...")
    p.add_argument("--encoding", default="utf-8", help="text encoding of CSV/JSONL input")
    p.add_argument("--max-chars", type=int, default=5000, help="quarantine longer posts")
    p.add_argument("--no", dest="clean_options", action=_TurnOff, metavar="STEP", choices=sorted(_clean_steps()),
                   help="turn a cleaning step off (repeatable)")
    p.add_argument("--train", choices=["auto", "always", "never"], default="auto")
    p.add_argument("--model-name", default="sentiment", type=_name("model name", "--model-name"))
    p.add_argument("--max-tokens", type=int, default=None,
                   help="tokens per post the CNN part reads, all of them the TF-IDF part (default: the 99th "
                        "percentile of the training posts, 8-512)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    _trust(p)
    _tune(p)
    _folds(p)


def market_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", help="CSV or Parquet, long (date,symbol,...) or wide (date,<symbol>...) "
                   "(default: synthetic prices)")
    p.add_argument("--symbol", help="symbol of a single series without a symbol column (default: file name)")
    p.add_argument("--target", help="price column to forecast (default: adj close if present, else close)")
    p.add_argument("--date-column", help="date column (default: one named date, time, day ..., else the first "
                   "column whose values are dates)")
    p.add_argument("--volume-column", help="volume column (default: volume, vol ..., else a traded value such as "
                   "turnover; none is fine)")
    p.add_argument("--splits", choices=["adjust", "drop", "keep"], default="adjust",
                   help="stock splits found in unadjusted prices: adjust the prices before them (default), drop "
                        "the windows across them, or keep them as real moves")
    p.add_argument("--train", choices=["auto", "always", "never"], default="auto",
                   help="auto: train when no compatible champion exists; always: walk a challenger forward; never: "
                        "forecast with the champion")
    p.add_argument("--lag", type=int, default=20, help="window length in steps")
    p.add_argument("--horizon", type=int, default=1, help="steps ahead")
    p.add_argument("--folds", type=int, default=3, help="walk-forward folds")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--cost", type=float, default=0.0005, help="cost per trade of the long/flat strategy")
    p.add_argument("--model-name", default="market", type=_name("model name", "--model-name"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mc-samples", type=int, default=0,
                   help="Monte Carlo dropout passes: 90%% forecast intervals and their coverage (0: off)")
    _tune(p)
    _common(p)


class _TurnOff(argparse.Action):
    """``--no STEP`` (repeatable) to ``{STEP: False, ...}``, the sentiment flow's ``clean_options``."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest) or {}), value: False})


def _clean_steps() -> list[str]:
    from tasks.sentiment.clean import CleanOptions

    return list(CleanOptions().as_dict())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tessera", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one pipeline")
    parsers = run.add_subparsers(dest="domain", required=True)
    for domain in domains().values():
        domain.add_options(parsers.add_parser(domain.name, help=domain.summary))
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
    for sub in (listing, show, promote):
        sub.add_argument("--out", help="data root (default: $TESSERA_DATA or ./data)")
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
    demo = commands.add_parser("demo", help="run every pipeline on embedded synthetic data")
    _common(demo)
    serve = commands.add_parser("serve", help="start a Prefect server (unless PREFECT_API_URL names one) and "
                                "serve every pipeline's deployment")
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


def _run(fn: Callable[..., dict], debug: bool, **kwargs) -> int:
    try:
        result = fn(**kwargs)
    except Exception as exc:  # every failure becomes one line and an exit code
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    print(_summary(result))
    return 0


def models_command(args: argparse.Namespace) -> int:
    """``tessera models list|show|promote``: read and fix the registry by hand."""

    from models.registry import ModelRegistry
    from tasks.evaluate import headline

    registry = ModelRegistry(args.out)
    try:
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
        else:
            registry.promote(args.name, args.version)
            print(f"{args.name}: {args.version} is the champion")
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    return 0


def demo(*, out: str | None, dask_address: str | None, debug: bool) -> int:
    """Every domain's demo runs on its synthetic set: for satellite, two monitoring runs of one area two months
    apart (the second reports change and drift)."""
    for domain in domains().values():
        for parameters in domain.demo:
            code = _run(domain.load_flow(), debug, **parameters, out=out, dask_address=dask_address)
            if code:
                return code
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    if args.command == "models":
        return models_command(args)
    if args.command == "demo":
        return demo(out=args.out, dask_address=args.dask_address, debug=args.debug)
    kwargs = {k: v for k, v in vars(args).items() if k not in ("command", "domain", "debug")}
    return _run(domains()[args.domain].load_flow(), args.debug, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
