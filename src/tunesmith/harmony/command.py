"""``tunesmith harmonize FILE`` (chords for a melody) and ``tunesmith harmonize --train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.rundir import given_path

FORMATS = ("json", "musicxml", "mid", "abc")  # written when the export stage knows them
MIN_TUNES = 20  # tunes --train needs: held-out tunes to measure it on, and chords of each kind to learn


def add_harmonize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="a melody in any format the corpus reader takes (kern, ABC, MusicXML, MIDI); its first tune")
    parser.add_argument("--out", default=None, metavar="FOLDER",
                        help="folder to write the melody with its chords into, as FILE's name .json, .musicxml, .mid "
                             "and .abc (never over an existing file)")  # fmt: skip
    parser.add_argument("--per", choices=("bar", "half"), default=None,
                        help="one chord per bar or per half bar (default: what the Nottingham tunes do in that meter)")
    parser.add_argument("--model", default=None, help="harmoniser file (default: the shipped models/harmony.json)")
    parser.add_argument("--train", action="store_true", help="retrain the harmoniser from the Nottingham tunes and save it at --model")
    parser.add_argument("--data", default="", help="Nottingham ABC folder for --train (default ../shared/data/nottingham-abc)")
    parser.add_argument("--workers", type=int, default=2, help="parsing processes for --train")  # fmt: skip


def run_harmonize(args: argparse.Namespace) -> int:
    if args.train:
        if args.file:
            raise TunesmithError("give a FILE to harmonise or --train, not both")
        return _train(args)
    if not args.file:
        raise TunesmithError("give a melody FILE to harmonise (or --train to retrain the harmoniser)")
    from tunesmith.harmony.decode import harmonize, read_melody
    from tunesmith.harmony.model import load_harmony

    out = given_path(args.out)
    model = load_harmony(args.model)
    song = read_melody(args.file)
    if out is not None:  # fail before any work when it cannot be written, or would write over a file
        _make_folder(out)
        taken = [path for path in song_paths(out, Path(args.file).stem) if path.exists()]
        if taken:
            raise TunesmithError(f"{str(taken[0])!r} exists: give --out a folder without it (nothing is written over)")
    per = args.per or model.per_for(song.meter)
    song.chords = harmonize(song, model, per)
    _print_chords(song, per)
    if out is not None:
        for path in write_song(song, out, Path(args.file).stem):
            print(f"wrote {path}")
    return 0


def song_paths(folder: Path, stem: str) -> list[Path]:
    """Where :func:`write_song` writes: ``stem`` with each suffix the export stage writes among FORMATS."""
    from tunesmith.export import FORMAT_SUFFIXES

    suffixes = [FORMAT_SUFFIXES.get(name, f".{name}") for name in FORMATS]
    return [folder / f"{stem}{suffix}" for suffix in suffixes if _writable(suffix)]


def write_song(song, folder: Path, stem: str) -> list[Path]:
    """The harmonised song in every format the export stage writes among FORMATS."""
    from tunesmith.export import write

    _make_folder(folder)
    return [write(song, path) for path in song_paths(folder, stem)]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TunesmithError(f"cannot write to {str(folder)!r}: {exc.strerror}") from None


def _writable(suffix: str) -> bool:
    from tunesmith.export import FORMATS as EXPORT_FORMATS

    return suffix in EXPORT_FORMATS


def _print_chords(song, per: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from tunesmith.song import bar_steps

    bar = bar_steps(song.meter, song.steps_per_quarter)
    starts = sorted(set(song.bar_starts or [0]))
    pickup = starts[0] > 0
    table = Table(title=song.title or "melody")
    for column in ("bar", "chords", "roman"):
        table.add_column(column, justify="right" if column == "bar" else "left")
    rows: dict[int, list] = {}
    for chord in song.chords:
        number = 0 if pickup and chord.start < starts[0] else 1 + (chord.start - starts[0]) // bar
        rows.setdefault(number, []).append(chord)
    for number, chords in rows.items():
        table.add_row(str(number), "  ".join(c.symbol for c in chords), "  ".join(c.roman for c in chords))
    console = Console()
    console.print(f"{song.key.replace('-', 'b')} {song.mode}, {song.meter}: a chord per {per}")
    console.print(table)


def _train(args: argparse.Namespace) -> int:
    from tunesmith.harmony.model import HarmonyConfig, default_harmony_path
    from tunesmith.harmony.nottingham import read_folder
    from tunesmith.harmony.training import train

    config = HarmonyConfig(data=args.data, workers=args.workers).validate()
    records = read_folder(config.data or None, workers=config.workers, cache_dir=config.cache_dir, progress=True)
    print(f"{len(records)} Nottingham tunes read")
    if len(records) < MIN_TUNES:  # too few to split into train, dev and test: the old file stays
        raise TunesmithError(f"only {len(records)} usable tunes in {config.data or 'the shared data folder'!r}; the "
                             f"harmoniser needs {MIN_TUNES} or more (nothing was saved)")  # fmt: skip
    model, figures = train(records, config)
    path = model.save(args.model or default_harmony_path())
    print_figures(figures, model)
    print(f"saved {path} (trained in {model.info['seconds']} s after parsing)")
    return 0


def print_figures(figures: dict, model) -> None:
    """The held-out figures as a rich table."""
    from rich.console import Console
    from rich.table import Table

    tunes = model.info.get("tunes", {})
    table = Table(title=f"held-out Nottingham tunes ({tunes.get('test', '?')} tunes; trained on {tunes.get('train', 0) + tunes.get('dev', 0)})")
    for column in ("chords per", "harmoniser", "exact", "by root", "chord tones"):
        table.add_column(column)
    for per, result in figures.items():
        for name in ("model", "tonic", "most notes", "annotated"):
            row = result[name]
            exact = f"{row['exact']:.1%}" if "exact" in row else "—"
            root = f"{row['root']:.1%}" if "root" in row else "—"
            table.add_row(per, {"model": "HMM (shipped)", "annotated": "the annotation"}.get(name, f"baseline: {name}"),
                          exact, root, f"{row['chord_tones']:.1%}")  # fmt: skip
    Console().print(table)
