"""``tunesmith`` command line: a thin layer over each stage's Python API.

Each stage module offers ``add_arguments(parser)`` and ``run(args) -> int``; they import their
heavy dependencies (music21, torch) inside ``run`` so ``tunesmith --help`` stays fast.
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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith", description="Learn folk melodies and compose new ones.")
    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        getattr(module, f"add_{name}_arguments")(command)
        command.set_defaults(handler=getattr(module, f"run_{name}"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
