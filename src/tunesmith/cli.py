"""``tunesmith`` command line: a thin layer over each stage's Python API.

Each stage module offers ``add_arguments(parser)`` and ``run(args) -> int``; they import their
heavy dependencies (music21, torch) inside ``run`` so ``tunesmith --help`` stays fast.

Every failure is one line on stderr: a problem the user can fix (a TunesmithError, or an OS
error such as a full disk or a folder without write permission, named with its path) exits 2;
anything else is an internal error, exit 1, with a hint to rerun with ``--debug`` (which shows
the traceback) and report it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tunesmith import __version__
from tunesmith.errors import TunesmithError

# name → (module, one-line help). Module attributes: add_<name>_arguments / run_<name>.
COMMANDS = {
    "prepare": ("tunesmith.corpus.command", "read a corpus and write the encoded dataset (cached)"),
    "generate": ("tunesmith.generate.command", "compose melodies from a trained model"),
    "regenerate": ("tunesmith.generate.command", "write some bars of a generated melody anew, keeping the rest"),
    "corpora": ("tunesmith.corpus.command", "list the bundled corpora with their tune counts"),
    "train": ("tunesmith.training.command", "train the melody LSTM"),
    "evaluate": ("tunesmith.evaluate.command", "score a model: likelihood, statistics, originality"),
    "harmonize": ("tunesmith.harmony.command", "choose chords for a melody (or --train the harmoniser)"),
    "analyze": ("tunesmith.form.command", "print a song's phrases and form (AABA…)"),
    "critic": ("tunesmith.critic.command", "fit a model's critic, which keeps the most song-like of a few candidates"),
    "serve": ("tunesmith.studio.command", "the studio in the browser: compose, listen, regenerate bars, download"),
}


DEBUG_HELP = "show the full traceback of an unexpected error"


def describe_os_error(exc: OSError) -> str:
    """One line for an OS error: what went wrong and on which path."""
    why = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    return f"{why}: " + " → ".join(repr(str(p)) for p in paths) if paths else why


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (what is wrong and where the help is), exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tunesmith", description="Learn folk melodies and compose new ones.")
    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        getattr(module, f"add_{name}_arguments")(command)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        command.set_defaults(handler=getattr(module, f"run_{name}"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad flag already reported in one line
        return int(exc.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except TunesmithError as exc:
        print(f"tunesmith {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tunesmith {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only or forbidden place: the user can fix it
        if args.debug:
            raise
        print(f"tunesmith {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, and the way to the traceback
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"tunesmith {args.command}: internal error: {type(exc).__name__}: {first} (rerun with --debug for "
              "the traceback and report it)", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
