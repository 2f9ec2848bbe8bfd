"""Command line: `python -m analysis report PATH [--out DIR]`."""

from __future__ import annotations

import sys

from trainables.errors import OneLineParser

from .report import build_report
from .results import ResultsError


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m analysis", description="Tables and figures from a sweep's Parquet results.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser(
        "report",
        help="build the report of one sweep",
        description="Print the results table and write it (Markdown, CSV) with the figures (PNG).",
    )
    report.add_argument("path", help="the sweep folder (<storage>/<sweep>), its parquet/ folder, or an s3:// URI")
    report.add_argument("--out", help="where to write the report (default: <sweep>/report)")
    args = parser.parse_args(argv)
    try:
        result = build_report(args.path, args.out)
    except ResultsError as error:
        print(f"python -m analysis: error: {error}", file=sys.stderr)
        return 2  # bad input, as the orchestrator's: a missing, empty or corrupt results folder
    print(result.text)
    print(f"report written to {result.out_dir}:")
    for file in result.files:
        print(f"  {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
