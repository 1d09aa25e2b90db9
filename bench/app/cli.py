"""``bench``: run one pattern, the whole pipeline, or rebuild the report, from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.app import pipeline, profiles, recommend
from bench.core.errors import BenchError
from bench.patterns import registry
from bench.systems import reaper


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BenchError(f"--param expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command itself, not a test calling main([...]): it owns what it starts
        try:
            # SIGTERM/SIGHUP unwind like Ctrl-C; on the way out every process the run started is ended
            # and its scratch folder removed, however the run stopped (bench.systems.reaper).
            with reaper.supervise():
                return main(sys.argv[1:])
        except reaper.Stopped as exc:
            print(f"bench: {exc}; the processes it started have been ended", file=sys.stderr)
            return 128 + exc.signum
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one pattern's notebook once; prints the run directory")
    run.add_argument("pattern", help=f"one of: {', '.join(registry.names())}")
    run.add_argument("--profile", default="smoke", help=f"one of: {', '.join(profiles.PROFILES)} (default smoke)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    run.add_argument("--results", type=Path, default=None, help="results directory (default results/)")

    pipe = sub.add_parser("pipeline", help="data, model, every pattern's sweep, then the report")
    pipe.add_argument("--profile", default="default", help=f"one of: {', '.join(profiles.PROFILES)}")
    pipe.add_argument("--results", type=Path, default=None)
    pipe.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="your model_path, data_path, id_column"
    )

    rep = sub.add_parser("report", help="rebuild results/report.html from the results on disk")
    rep.add_argument("--results", type=Path, default=None)

    sub.add_parser("kernel", help="register this interpreter as the 'bench' Jupyter kernel")

    rec = sub.add_parser(
        "recommend", help="the pattern four answers call for, with its measured latency and cost (claim C9)"
    )
    rec.add_argument("--latency", help="acceptable latency from trigger to prediction, e.g. 100ms, 2s, 5min")
    rec.add_argument("--freshness", help="how old a prediction may be when used, e.g. 5min, 24h, 7d")
    rec.add_argument("--trigger", help="what triggers a prediction: schedule, event or request")
    rec.add_argument("--volume", help="predictions per day, e.g. 1e6 or 250k")
    rec.add_argument("--use-cases", action="store_true", help="run the article's seven use cases instead")
    rec.add_argument("--results", type=Path, default=None, help="results directory (default results/)")
    rec.add_argument("--price-preset", default="", help="a preset of the price file (default: its default)")
    rec.add_argument("--prices-file", default="", help="a price YAML file (default bench/analysis/prices.yaml)")
    rec.add_argument("--peak-to-mean", type=float, default=3.0, help="peak request rate over the mean (default 3)")
    rec.add_argument("--min-replicas", type=int, default=2, help="always-on replicas kept at least (default 2)")
    rec.add_argument("--json", action="store_true", help="print the recommendation(s) as JSON")

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            values = pipeline.pattern_parameters(args.pattern, args.profile, _overrides(args.param))
            print(pipeline.run_pattern(args.pattern, values, args.profile, args.results))
        elif args.command == "pipeline":
            html = pipeline.full(args.profile, args.results, workload=_overrides(args.param))
            print(f"report: {html}")
        elif args.command == "report":
            print(f"report: {pipeline.report(args.results)}")
        elif args.command == "kernel":
            print(f"kernel: {pipeline.ensure_kernel()}")
        elif args.command == "recommend":
            print(
                recommend.command(
                    latency=args.latency,
                    freshness=args.freshness,
                    trigger=args.trigger,
                    volume=args.volume,
                    use_cases=args.use_cases,
                    results_dir=args.results,
                    price_preset=args.price_preset,
                    prices_file=args.prices_file,
                    peak_to_mean=args.peak_to_mean,
                    min_replicas=args.min_replicas,
                    as_json=args.json,
                )
            )
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # papermill's execution error: point at the executed notebook
        if type(exc).__name__ == "PapermillExecutionError":
            print(f"bench: a notebook cell failed: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
