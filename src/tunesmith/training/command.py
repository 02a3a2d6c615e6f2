"""``tunesmith train``: a preset (+ --corpus, --set) → a run folder; ``--resume RUN_DIR`` continues one.

Exit codes: 0 when training ends (epochs done, early stop or time budget), 2 for bad input,
130 after Ctrl-C and 143 after SIGTERM (both save ``last.pt`` first; resume with ``--resume``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tunesmith.config import Config, add_config_arguments, apply_overrides, config_from_args
from tunesmith.errors import TunesmithError


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default_preset="erk")
    parser.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder (default: runs/<preset>-<time>)")
    parser.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar and epoch lines")


def train_config(args: argparse.Namespace) -> tuple[Config, Path, bool]:
    """The Config, run folder and resume flag a ``train`` invocation means."""
    if args.resume:
        from tunesmith.training.loop import resume_config

        run_dir = Path(args.resume)
        if not (run_dir / "last.pt").is_file():
            raise TunesmithError(f"nothing to resume in {args.resume!r}: it has no last.pt")
        if args.corpus:
            raise TunesmithError("--corpus cannot change when resuming; the run keeps its corpus")
        return apply_overrides(resume_config(run_dir), list(args.set)), run_dir, True
    config = config_from_args(args)
    name = Path(args.preset).stem
    run_dir = Path(args.out) if args.out else Path(config.train.out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "last.pt").exists():
        raise TunesmithError(f"{str(run_dir)!r} already holds a run; use --resume {run_dir} or another --out")
    return config, run_dir, False


def run_train(args: argparse.Namespace) -> int:
    config, run_dir, resume = train_config(args)
    from tunesmith.training.loop import train

    result = train(config, run_dir, resume=resume, progress=not args.no_progress)
    if result.state.best and not args.no_progress and os.environ.get("RANK", "0") == "0":
        best = result.state.best
        print(f"{result.reason}: best epoch {best['epoch']}: bits/step {best['bits_per_step']:.3f}, pitch bits/note "
              f"{best['pitch_bits_per_note']:.3f} → {run_dir / 'best.pt'}", file=sys.stderr)  # fmt: skip
    return result.exit_code
