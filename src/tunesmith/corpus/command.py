"""``tunesmith prepare`` and ``tunesmith corpora``."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tunesmith.config import add_config_arguments, config_from_args
from tunesmith.errors import TunesmithError
from tunesmith.rundir import reserve_run_folder


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", default=None,
                        help="also copy dataset.json, vocab.json, report.json into this new (or empty) folder")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_prepare(args: argparse.Namespace) -> int:
    from tunesmith.corpus.dataset import prepare

    config = config_from_args(args)
    run = reserve_run_folder(args.out) if args.out is not None else None  # a bad --out fails before the work
    try:
        dataset = prepare(config.corpus, config.encoding, progress=not args.no_progress)
        if run is not None:
            try:
                for name in ("dataset.json", "vocab.json", "report.json"):
                    shutil.copyfile(dataset.folder / name, run.tmp / name)
            except OSError as exc:
                raise TunesmithError(f"cannot write to {str(run.path)!r}: {exc.strerror}") from None
            run.commit()
    except BaseException:
        if run is not None:
            run.abort()
        raise
    if args.json:
        print(json.dumps(dataset.report, indent=1))
    else:
        print_report(dataset.report, dataset.folder)
    return 0


def print_report(report: dict, folder: Path) -> None:
    """The prepare report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="tunesmith prepare", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    cache = "reused (cached)" if report.get("cache") == "hit" else "built"
    rows = [
        ("sources", ", ".join(report["sources"])),
        ("songs read", str(report["songs_read"])),
        ("songs kept", str(report["songs_kept"])),
        ("songs rejected", str(report["songs_rejected"])),
    ]
    rows += [(f"  {reason}", str(n)) for reason, n in report["rejected_by_reason"].items()]
    if "train_only" in report:
        extra = report["train_only"]
        rows.append(("training only", f"{', '.join(report['train_sources'])}: {extra['kept']} songs kept"))
        rows += [(f"  left out: {why}", str(n)) for why, n in extra["left_out"].items()]
    rows += [
        ("chords → top note", str(report["chords_to_top_note"])),
        ("grace notes dropped", str(report["grace_notes_dropped"])),
        ("tokens", f"{report['tokens']:,}"),
        ("vocabulary", f"{report['vocabulary_size']} tokens, pitches {report['pitch_range']}"),
        ("modes", ", ".join(f"{k} {v}" for k, v in report["modes"].items())),
        ("meters", ", ".join(f"{k} {v}" for k, v in report["meters"].items())),
    ]
    for name, info in report["split"].items():
        rows.append((f"split {name}", f"{info['songs']} songs, {info['groups']} title groups, {info['tokens']:,} tokens"))
    rows += [("dataset", f"{folder} ({cache}, {report['seconds']} s)")]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    from tunesmith.form.command import print_form_statistics

    print_form_statistics(report.get("form"), console)


def add_corpora_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run_corpora(args: argparse.Namespace) -> int:
    from tunesmith.corpus.sources import bundled_corpora, count_tunes

    rows = []
    for name, files in bundled_corpora().items():
        rows.append({"name": name, "files": len(files), "tunes": sum(count_tunes(f) for f in files)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bundled corpora (music21's Essen Folksong Collection, no download)")
    for column in ("name", "files", "tunes"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for row in rows:
        table.add_row(row["name"], str(row["files"]), str(row["tunes"]))
    Console().print(table)
    return 0
