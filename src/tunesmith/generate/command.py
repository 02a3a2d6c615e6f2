"""``tunesmith generate``: compose melodies from a trained model and write every output format.

A thin layer over :class:`tunesmith.generate.Generator` and :func:`tunesmith.export.write`.
Everything is validated first and written into a hidden temp folder that is renamed into
place at the end, so a failed run leaves nothing half written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from tunesmith.errors import TunesmithError

ALL_FORMATS = ("mid", "musicxml", "wav", "png", "svg", "json")


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to compose")
    what.add_argument("--model", default=None, help="checkpoint (default: the shipped models/erk.pt)")
    what.add_argument("--num", type=int, default=1, help="melodies to compose, as one batch (default 1)")
    length = what.add_mutually_exclusive_group()
    length.add_argument("--bars", type=int, default=None, help="length in bars of the meter (default 16)")
    length.add_argument("--steps", type=int, default=None, help="length in time steps (16ths at the default grid)")
    what.add_argument("--mode", default=None, help="major or minor (default: the primer file's, else major)")
    what.add_argument("--meter", default=None, help="time signature such as 3/4 or 6/8 (default 4/4)")
    what.add_argument("--key", default=None, help="output key's tonic: C, F#, Bb… (default C major / A minor)")
    what.add_argument("--primer", default="", help='opening in tokens, in the output key: "67 _ _ _ 65 _ 64 _"')
    what.add_argument("--primer-file", default="", help="opening from a file (ABC, kern, MusicXML, MIDI)")
    what.add_argument("--scale", action="store_true", help="only pitches of the key's scale")
    what.add_argument("--range", default="", metavar="LOW-HIGH", help="pitch range, e.g. C4-G5")
    how = parser.add_argument_group("sampling")
    how.add_argument("--scheme", default="sample", choices=["sample", "greedy", "mixed", "top-k", "top-p", "beam"],
                     help="how each next step is chosen (default sample)")  # fmt: skip
    how.add_argument("--temperature", type=float, default=1.0, help="> 0; lower is safer, higher wilder (default 1.0)")
    how.add_argument("--top-k", type=int, default=8, help="tokens kept by --scheme top-k (default 8)")
    how.add_argument("--top-p", type=float, default=0.9, help="probability kept by --scheme top-p (default 0.9)")
    how.add_argument("--mixed-p", type=float, default=0.5, help="chance of argmax per step with --scheme mixed")
    how.add_argument("--beam-size", type=int, default=4, help="beams with --scheme beam (default 4)")
    how.add_argument("--seed", type=int, default=None, help="makes the run reproducible (default: a fresh one)")
    how.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default auto")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None, help="run folder to create (default out/generate-<date-time>)")
    out.add_argument("--formats", default="all", help=f"comma list of {','.join(ALL_FORMATS)} (default all)")
    out.add_argument("--bpm", type=float, default=100.0, help="tempo in quarter notes per minute (default 100)")
    out.add_argument("--program", type=int, default=1, help="General MIDI instrument 1..128 (default 1, piano)")


def parse_formats(text: str) -> list[str]:
    """The --formats list in writing order; "all" means every format."""
    names = [n.strip().lower().lstrip(".") for n in text.split(",") if n.strip()]
    names = ["mid" if n in ("midi",) else "musicxml" if n == "xml" else n for n in names]
    if names in ([], ["all"]):
        return list(ALL_FORMATS)
    unknown = [n for n in names if n not in ALL_FORMATS]
    if unknown:
        raise TunesmithError(f"unknown format {unknown[0]!r} in --formats; known: {', '.join(ALL_FORMATS)}, all")
    return [f for f in ALL_FORMATS if f in names]


def _configs(args: argparse.Namespace):
    from tunesmith.export import ExportConfig
    from tunesmith.generate.generator import GenerationConfig

    generation = GenerationConfig(
        num=args.num, bars=args.bars, steps=args.steps, mode=args.mode, meter=args.meter, key=args.key,
        scheme=args.scheme, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        mixed_p=args.mixed_p, beam_size=args.beam_size, seed=args.seed, primer=args.primer,
        primer_file=args.primer_file, scale=args.scale, range=args.range,
    ).validate()  # fmt: skip
    return generation, ExportConfig(bpm=args.bpm, program=args.program).validate()


def _reserve(out: Path) -> tuple[Path, list[Path]]:
    """Create the hidden temp folder beside ``out``; returns it and the parent folders made for it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TunesmithError(f"output folder {str(out)!r} already exists and is not empty: choose another --out")
    made = [p for p in reversed(out.absolute().parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        probe = tmp / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TunesmithError(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}") from None
    return tmp, made


def run_generate(args: argparse.Namespace) -> int:
    import warnings

    generation, export = _configs(args)
    formats = parse_formats(args.formats)
    out = Path(args.out or f"out/generate-{time.strftime('%Y%m%d-%H%M%S')}")
    from tunesmith.generate.generator import Generator
    from tunesmith.generate.primer import TunesmithWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generator = Generator.from_checkpoint(args.model, args.device)
        melodies = generator.generate(generation)
    # Only our own adjustments are news to the user; library chatter (music21) is dropped.
    notices = [str(w.message) for w in caught if issubclass(w.category, TunesmithWarning)]
    tmp, made = _reserve(out)
    try:
        written, notices = _write_all(melodies, tmp, formats, export, args, notices)
        if out.exists():
            _move_into(tmp, out)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    print_table(melodies, written, out, notices)
    return 0


def _move_into(tmp: Path, out: Path) -> None:
    """``out`` exists but is empty: move the files in, then drop the temp folder."""
    for item in tmp.iterdir():
        item.rename(out / item.name)
    tmp.rmdir()


def _write_all(melodies, folder: Path, formats: list[str], export, args, notices: list[str]):
    """Write each melody's files; a missing fluidsynth skips WAV with one notice, the rest still written."""
    from dataclasses import asdict

    from tunesmith.export import FORMAT_SUFFIXES
    from tunesmith.export.audio import AudioUnavailable

    command = "tunesmith generate " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["generate"] else ""
    written: list[list[str]] = []
    audio_missing = False
    for melody in melodies:
        melody.params["export"] = asdict(export)
        melody.params["formats"] = formats
        if command:
            melody.params["command"] = command
        stem = f"melody-{melody.params['index'] + 1:02d}"
        files = []
        for name in formats:
            if name == "wav" and audio_missing:
                continue
            try:
                melody.write(folder / f"{stem}{FORMAT_SUFFIXES[name]}")
                files.append(f"{stem}{FORMAT_SUFFIXES[name]}")
            except AudioUnavailable as exc:
                notices.append(f"no WAV written: {exc}")
                audio_missing = True
        written.append(files)
    return written, notices


def print_table(melodies, written: list[list[str]], out: Path, notices: list[str]) -> None:
    """What was written, one row per melody, then any notices in yellow."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    first = melodies[0].params
    caption = f"seed {first['seed']} · scheme {first['scheme']} · {first['model']}"
    table = Table(title=f"tunesmith generate → {out}/", caption=caption)
    for column in ("melody", "key", "meter", "bars", "notes", "ended by", "files"):
        table.add_column(column, justify="right" if column in ("bars", "notes") else "left")
    for melody, files in zip(melodies, written, strict=True):
        song = melody.song
        table.add_row(
            files[0].rsplit(".", 1)[0] if files else f"melody-{melody.params['index'] + 1:02d}",
            f"{song.key.replace('-', 'b')} {song.mode}", song.meter, f"{melody.bars:.3g}",
            str(sum(1 for n in song.notes if n.pitch is not None)), melody.params["ended_by"],
            " ".join(f.rsplit(".", 1)[1] for f in files),
        )  # fmt: skip
    console.print(table)
    for notice in notices:
        console.print(f"[yellow]note:[/] {notice}", highlight=False)
