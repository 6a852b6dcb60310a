"""`tables`, `figures`, `provenance` and `report`: the reporting stages' command lines.
Each adapter unpacks its arguments into the stage's plain function."""

from __future__ import annotations


def _study_inputs(p) -> None:
    p.add_argument("--config", required=True, help="resolved config (results/config.json)")
    p.add_argument("--runs", nargs="+", required=True, help="metrics.json of every run")
    p.add_argument("--timing", nargs="*", default=[], help="timing.json per device")
    p.add_argument("--data-meta", help="the data cache's .json (sha256, source)")


def add_arguments_tables(p) -> None:
    _study_inputs(p)
    p.add_argument("--out-dir", required=True, help="folder for the CSV tables")


def main_tables(args) -> int:
    from . import tables

    tables.build(args.config, args.runs, args.timing, args.data_meta, args.out_dir)
    return 0


def add_arguments_figures(p) -> None:
    _study_inputs(p)
    p.add_argument("--out-dir", required=True, help="folder for the SVG and PNG figures")


def main_figures(args) -> int:
    from . import figures

    figures.build(args.config, args.runs, args.timing, args.out_dir)
    return 0


def add_arguments_provenance(p) -> None:
    _study_inputs(p)
    p.add_argument("--repo", default=".", help="git working tree to describe")
    p.add_argument(
        "--recorded", nargs="*", default=[], help="the recording's provenance, if runs were copied"
    )
    p.add_argument("--out", required=True, help="provenance JSON to write")


def main_provenance(args) -> int:
    from . import provenance

    recorded = args.recorded[0] if args.recorded else None
    provenance.build(
        args.config, args.runs, args.timing, args.data_meta, args.repo, recorded, args.out
    )
    return 0


def add_arguments_report(p) -> None:
    _study_inputs(p)
    p.add_argument("--tables-dir", required=True, help="folder with the tables' CSVs")
    p.add_argument("--figures-dir", required=True, help="folder with the figures' SVGs")
    p.add_argument("--provenance", required=True, help="provenance JSON")
    p.add_argument("--out", required=True, help="PDF to write")
    p.add_argument("--html", help="also write the intermediate HTML here (optional)")


def main_report(args) -> int:
    from . import report

    report.build(
        args.config,
        args.runs,
        args.timing,
        args.tables_dir,
        args.figures_dir,
        args.provenance,
        args.out,
        html=args.html,
    )
    return 0
