"""``tunesmith analyze FILE``: one song's phrases and form; the form block of the prepare report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunesmith.errors import TunesmithError

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a kern, ABC, MusicXML or MIDI file")
    parser.add_argument("--index", type=int, default=None,
                        help="only the N-th tune of a file with several (1 = first); default all")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")


def run_analyze(args: argparse.Namespace) -> int:
    from tunesmith.config import CorpusConfig, EncodingConfig
    from tunesmith.corpus.reader import make_jobs, read_job
    from tunesmith.corpus.sources import SourceFile
    from tunesmith.corpus.split import readable_title
    from tunesmith.form.stats import analyse
    from tunesmith.song import Song

    path = Path(args.file).expanduser()
    if not path.is_file():
        raise TunesmithError(f"no such file: {str(path)!r}")
    jobs = make_jobs(SourceFile(path, str(path)))
    if args.index is not None:
        if not 1 <= args.index <= len(jobs):
            raise TunesmithError(f"--index {args.index} is out of range: {path.name} has {len(jobs)} tune(s)")
        jobs = [jobs[args.index - 1]]
    corpus, encoding = CorpusConfig(), EncodingConfig()
    settings = {"steps_per_quarter": encoding.steps_per_quarter, "accepted_durations": corpus.accepted_durations}
    results = []
    for job in jobs:
        result = read_job(job, settings)
        if "song" not in result:
            results.append({"source": job.label, "error": f"{result['reason']}: {result['detail']}"})
            continue
        song = Song.from_dict(result["song"])
        results.append({"source": job.label, "title": readable_title(song.title), "meter": song.meter,
                        "key": f"{song.key} {song.mode}", "transposition": song.transposition,
                        **analyse(song).to_dict()})  # fmt: skip
    if all("error" in r for r in results):
        raise TunesmithError(f"cannot read {path.name}: {results[0]['error']}")
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=1))
    else:
        _print(results)
    return 0


def _print(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for result in results:
        if "error" in result:
            console.print(f"[bold]{result['source']}[/bold]: not read ({result['error']})")
            continue
        table = Table(title=f"{result['title']} — {result['meter']}, {result['key']} (phrases: {result['phrase_source']})")
        for column in ("phrase", "form", "start", "steps", "bars", "last note", "degree", "its steps"):
            table.add_column(column, justify="left" if column == "form" else "right")
        for i, phrase in enumerate(result["phrases"], 1):
            pitch = phrase["final_pitch"]  # in C major / A minor: name it in the song's own key
            pitch = None if pitch is None else pitch - result["transposition"]
            name = "" if pitch is None else f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"
            table.add_row(str(i), phrase["label"], str(phrase["start"]), str(phrase["steps"]), str(phrase["bars"]),
                          name, phrase["final_degree"], str(phrase["final_steps"]))  # fmt: skip
        console.print(table)
        console.print(f"form: [bold]{result['form']}[/bold]   with bars: {result['form_with_bars']}   "
                      f"repetition: {result['repetition']:.0%}")  # fmt: skip


def print_form_statistics(stats: dict | None, console) -> None:
    """The prepare report's form block (see ``tunesmith.form.stats.form_statistics``)."""
    if not stats or not stats.get("songs"):
        return
    from rich.table import Table

    table = Table(title="form (phrases and their restatements)", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [("phrases found by", ", ".join(f"{k} {v}" for k, v in stats["phrase_sources"].items()))]
    for meter, info in stats["forms_by_meter"].items():
        top = ", ".join(f"{form} ({n})" for form, n in info["top"])
        rows.append((f"forms in {meter} ({info['songs']} songs)", top))
    rows += [
        ("distinct forms", str(stats["distinct_forms"])),
        ("phrases per song", _shares(stats["phrases_per_song"])),
        ("phrase length (bars)", _shares(stats["phrase_bars"])),
        ("phrase-final degrees", _shares(stats["final_degrees"])),
        ("song-final degrees", _shares(stats["song_final_degrees"])),
        ("repeated 4-note patterns", f"{stats['repetition']:.1%} of a song's patterns (mean)"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _shares(counts: dict, top: int = 8) -> str:
    total = sum(counts.values()) or 1
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k}: {v / total:.0%}" for k, v in items)
