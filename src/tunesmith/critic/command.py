"""``tunesmith critic MODEL``: fit the model's critic and store it in the checkpoint.

The file is rewritten atomically (or written to ``--output``); everything else in it is kept.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.rundir import given_path


def add_critic_arguments(parser: argparse.ArgumentParser) -> None:
    from tunesmith.critic.model import CriticConfig
    from tunesmith.settings import add_fields

    parser.add_argument("model", help="a tunesmith checkpoint (.pt) whose training corpus can be read")
    parser.add_argument("--output", default="", help="write here instead of rewriting the checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_fields(parser, CriticConfig)


def run_critic(args: argparse.Namespace) -> int:
    import torch

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.critic.model import EXTRA_KEY, CriticConfig, fit_critic, training_songs
    from tunesmith.generate import Generator
    from tunesmith.settings import from_args

    config = from_args(CriticConfig, args).validate()
    path = Path(args.model).expanduser()
    if not path.is_file():
        raise TunesmithError(f"no such model file: {str(path)!r}")
    output = given_path(args.output, "--output") or path
    _check_writable(output)  # before the minutes of fitting, not after
    torch.set_num_threads(1)  # one melody at a time is bound by per-step overhead, not arithmetic
    checkpoint = Checkpoint.load(path)
    generator = Generator.from_checkpoint(path, "cpu")
    critic = fit_critic(generator, training_songs(checkpoint, config.songs), config, progress=not args.quiet)
    checkpoint.extra[EXTRA_KEY] = critic.to_plain()
    checkpoint.save(output)
    fitted = critic.fitted
    print(f"critic of {path.name}: {config.trees} trees fitted on {fitted['songs']} training songs and "
          f"{fitted['melodies']} of the model's melodies in {fitted['seconds']:.0f} s; out-of-bag accuracy "
          f"{fitted['out_of_bag_accuracy']:.1%}; written to {output}")  # fmt: skip
    return 0


def _check_writable(output: Path) -> None:
    """A one-line TunesmithError when a checkpoint could not be written at ``output``."""
    if output.is_dir():
        raise TunesmithError(f"--output {str(output)!r} is a folder: give a file name")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise TunesmithError(f"cannot write {str(output)!r}: a part of its path is a file, not a folder") from None
    except OSError as exc:
        raise TunesmithError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
    try:  # the way the checkpoint is written: a file beside it, then a rename
        with tempfile.NamedTemporaryFile(dir=output.parent, prefix=f".{output.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise TunesmithError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
