"""``python -m tunesmith.originality CHECKPOINT``: add the originality index to a checkpoint file.

The index is built from the training split named in the checkpoint's own config (prepared, or
read from the corpus cache), with ``--max-copy``'s default taken from its validation split. The
file is rewritten atomically (or written to ``--output``); everything else in it is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.originality.entry import DEFAULT_PERCENTILE, EXTRA_KEY, entry_for_checkpoint


def add_index(path: str | Path, output: str | Path | None = None, percentile: float = DEFAULT_PERCENTILE,
              progress: bool = True, dataset: Any = None) -> dict:  # fmt: skip
    """Add (or replace) ``extra["originality"]`` in the checkpoint at ``path`` (or write the result
    to ``output``); ``dataset`` replaces the corpus the checkpoint's config names. Returns the entry."""
    from tunesmith.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(path)
    entry = entry_for_checkpoint(checkpoint, percentile, progress, dataset)
    checkpoint.extra[EXTRA_KEY] = entry
    checkpoint.save(Path(output) if output else Path(path))
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunesmith.originality", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a tunesmith checkpoint (.pt)")
    parser.add_argument("--output", default="", help="write here instead of rewriting the checkpoint")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="held-out percentile that sets the default --max-copy (default 95)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        entry = add_index(args.checkpoint, args.output or None, args.percentile, progress=not args.quiet)
    except TunesmithError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = entry["held_out"]
    print(f"indexed {len(entry['titles'])} training songs ({len(entry['steps'])} notes) into "
          f"{args.output or args.checkpoint} in {time.perf_counter() - started:.1f} s; default --max-copy "
          f"{stats['max_copy']} notes = {stats['percentile']:g}th percentile of the longest stretch each of "
          f"{stats['songs']} held-out songs shares with them (median {stats['median']:g}, max {stats['max']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
