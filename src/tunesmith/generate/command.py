"""``tunesmith generate``: compose melodies from a trained model and write every output format.

A thin layer over :class:`tunesmith.generate.Generator` and :func:`tunesmith.export.write`.
Everything is validated first and written into a hidden temp folder that is renamed into
place at the end, so a failed run leaves nothing half written.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tunesmith.errors import TunesmithError

ALL_FORMATS = ("mid", "musicxml", "abc", "wav", "png", "svg", "json")


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    from tunesmith.export import ExportConfig
    from tunesmith.generate.config import GenerationConfig
    from tunesmith.settings import add_fields

    what = parser.add_argument_group("what to compose")
    what.add_argument("--model", default=None, help="checkpoint (default: the shipped models/erk.pt)")
    add_fields(what, GenerationConfig, only=["num", "bars", "steps", "mode", "meter", "key", "primer", "primer_file",
                                             "scale", "range", "instrument", "chords", "chord_span", "full_length",
                                             "max_copy", "form", "pickup"])  # fmt: skip
    how = parser.add_argument_group("sampling")
    add_fields(how, GenerationConfig, only=["scheme", "temperature", "top_k", "top_p", "mixed_p", "beam_size", "seed",
                                            "cadence", "motif"])  # fmt: skip
    how.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default auto")
    add_output_arguments(parser, ExportConfig)


def add_output_arguments(parser: argparse.ArgumentParser, export_config: type) -> None:
    """``--out``, ``--formats`` and the export settings (shared with ``tunesmith regenerate``)."""
    from tunesmith.settings import add_fields

    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None, help="run folder to create (default out/<command>-<date-time>)")
    out.add_argument("--formats", default="all", help=f"comma list of {','.join(ALL_FORMATS)} (default all)")
    add_fields(out, export_config, only=["bpm", "program", "humanize", "velocity", "soundfont"])


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
    from tunesmith.generate.config import GenerationConfig
    from tunesmith.settings import from_args

    generation = from_args(GenerationConfig, args).validate()
    base = None
    if generation.instrument:  # the instrument's sound, and its usual tempo unless --bpm is given
        from tunesmith.export import ExportConfig

        base = ExportConfig(instrument=generation.instrument)
    return generation, export_config_of_args(args, base)


def export_config_of_args(args: argparse.Namespace, base=None):
    """The ExportConfig the output flags mean (over ``base``), checked (finite numbers in range)."""
    from tunesmith.export import ExportConfig
    from tunesmith.settings import check_fields, from_args

    export = from_args(ExportConfig, args, base)
    check_fields(export)
    return export.validate()


def check_formats(formats: list[str], export) -> None:
    """WAV alone without fluidsynth (or a soundfont) is an error before any work: nothing asked
    for could be written. With other formats the run goes on and says WAV was skipped."""
    if formats == ["wav"]:
        from tunesmith.export.audio import find_fluidsynth, find_soundfont

        find_fluidsynth()
        find_soundfont(export.soundfont)


def run_generate(args: argparse.Namespace) -> int:
    generation, export = _configs(args)
    formats = parse_formats(args.formats)
    check_formats(formats, export)
    from tunesmith.rundir import reserve_run_folder

    run = reserve_run_folder(args.out if args.out is not None else f"out/generate-{time.strftime('%Y%m%d-%H%M%S')}")
    with run:  # a failure anywhere removes the temp folder and the lock
        from tunesmith.generate.generator import Generator

        with collect_notices() as notices:
            generator = Generator.from_checkpoint(args.model, args.device)
            melodies = generator.generate(generation)
        written, notices = _write_all(melodies, run.tmp, formats, export, notices, "generate")
    print_table(melodies, written, run.path, notices, "generate")
    return 0


@contextmanager
def collect_notices():
    """Collect our own TunesmithWarnings (adjustments the user should hear of) into a list;
    library chatter (music21) is dropped."""
    import warnings

    from tunesmith.generate.primer import TunesmithWarning

    notices: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notices
    notices += [str(w.message) for w in caught if issubclass(w.category, TunesmithWarning)]


def add_regenerate_arguments(parser: argparse.ArgumentParser) -> None:
    from tunesmith.export import ExportConfig
    from tunesmith.generate.regenerate import RegenerateConfig
    from tunesmith.settings import add_fields

    parser.add_argument("melody", help="a melody-NN.json written by tunesmith generate (or regenerate)")
    what = parser.add_argument_group("what to regenerate")
    add_fields(what, RegenerateConfig, only=["bars", "fix", "num", "candidates", "horizon", "join_bars", "scale", "range"])
    what.add_argument("--model", default=None, help="checkpoint (default: the one that made the melody)")
    how = parser.add_argument_group("sampling")
    add_fields(how, RegenerateConfig, only=["scheme", "temperature", "top_k", "top_p", "mixed_p", "seed"])
    how.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="default auto")
    add_output_arguments(parser, ExportConfig)


def run_regenerate(args: argparse.Namespace) -> int:
    from tunesmith.generate.melody import Melody
    from tunesmith.generate.regenerate import RegenerateConfig
    from tunesmith.settings import from_args

    config = from_args(RegenerateConfig, args)
    if not config.bars:
        raise TunesmithError("say which bars to regenerate: --bars 5-8")
    config.validate()
    melody = Melody.load(args.melody)
    from tunesmith.export import export_config_of

    export = export_config_of_args(args, export_config_of(melody))  # as the melody was written, unless told
    formats = parse_formats(args.formats)
    check_formats(formats, export)
    model = args.model or melody.params.get("model") or None
    if model and not args.model and not Path(model).is_file():
        raise TunesmithError(f"the model that made this melody ({model!r}) is not there: pass it with --model")
    from tunesmith.rundir import reserve_run_folder

    run = reserve_run_folder(args.out if args.out is not None else f"out/regenerate-{time.strftime('%Y%m%d-%H%M%S')}")
    with run:
        from tunesmith.generate.generator import Generator
        from tunesmith.generate.regenerate import regenerate

        with collect_notices() as notices:
            generator = Generator.from_checkpoint(model, args.device)
            options = {k: v for k, v in vars(config).items() if k != "bars"}
            melodies = regenerate(generator, melody, config.bars, **options)
        written, notices = _write_all(melodies, run.tmp, formats, export, notices, "regenerate")
    print_table(melodies, written, run.path, notices, "regenerate")
    return 0


def _write_all(melodies, folder: Path, formats: list[str], export, notices: list[str], name: str = "generate"):
    """Write each melody's files; a missing fluidsynth skips WAV with one notice, the rest still written."""
    from dataclasses import asdict

    from tunesmith.export import FORMAT_SUFFIXES
    from tunesmith.export.audio import AudioUnavailable

    command = f"tunesmith {name} " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == [name] else ""
    written: list[list[str]] = []
    audio_missing = False
    for melody in melodies:
        melody.params["export"] = asdict(export)
        melody.params["formats"] = formats
        if command:
            melody.params["command"] = command
        stem = f"melody-{melody.params['index'] + 1:02d}"
        files = []
        for fmt in formats:
            if fmt == "wav" and audio_missing:
                continue
            try:
                melody.write(folder / f"{stem}{FORMAT_SUFFIXES[fmt]}")
                files.append(f"{stem}{FORMAT_SUFFIXES[fmt]}")
            except AudioUnavailable as exc:
                notices.append(f"no WAV written: {exc}")
                audio_missing = True
        written.append(files)
    return written, notices


def print_table(melodies, written: list[list[str]], out: Path, notices: list[str], command: str = "generate") -> None:
    """What was written, one row per melody, then any notices in yellow."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)  # a log keeps whole rows
    first = melodies[0].params
    made = first.get("regenerated") or first  # a regeneration's own seed and scheme
    kinds = sorted({f.rsplit(".", 1)[1] for files in written for f in files}, key=lambda k: (k != "json", k))
    caption = f"seed {made['seed']} · scheme {made['scheme']} · {first['model']} · files: {' '.join(kinds) or 'none'}"
    table = Table(title=f"tunesmith {command} → {out}/", caption=caption)
    from tunesmith.generate.copyguard import copy_cell

    with_form = any(m.params.get("form") for m in melodies)
    with_critic = any("critic" in m.params for m in melodies)  # chosen among candidates: the critic's score, which one
    columns = ("melody", "key", "meter", "bars", "notes") + (("form",) if with_form else ()) + (("critic",) if with_critic else ())
    for column in columns + ("ended by", "longest copy"):
        table.add_column(column, justify="right" if column in ("bars", "notes") else "left")
    for melody, files in zip(melodies, written, strict=True):
        song = melody.song
        form = (melody.params.get("form") or "–",) if with_form else ()
        p = melody.params
        critic = (f"{p['critic']:.2f} · {p['candidate'] + 1} of {p['candidates']}" if "critic" in p else "–",) if with_critic else ()
        table.add_row(
            files[0].rsplit(".", 1)[0] if files else f"melody-{melody.params['index'] + 1:02d}",
            f"{song.key.replace('-', 'b')} {song.mode}", song.meter, f"{melody.bars:.3g}",
            str(sum(1 for n in song.notes if n.pitch is not None)), *form, *critic, melody.params["ended_by"],
            copy_cell(melody.params.get("copy")),
        )  # fmt: skip
    console.print(table)
    for notice in notices:
        console.print(f"[yellow]note:[/] {notice}", highlight=False, soft_wrap=True)  # one line each
