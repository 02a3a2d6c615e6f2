"""How many pitches music21's ABC reader gets wrong by not carrying accidentals to the bar line.

For each ABC file of a corpus, every tune is parsed by music21 and handed to
``tunesmith.corpus.reader.carry_accidentals``, which applies ABC's rule (an accidental holds for
the same letter and octave to the bar line, and over a tie); the pitches it changes are counted.

Run: PYTHONPATH=src .venv/bin/python benchmarks/check_accidentals.py [erk|german|nottingham ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
from pathlib import Path

from tunesmith.corpus.sources import GERMAN, essen_folder

NOTTINGHAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "nottingham-abc"


def count(path: Path) -> tuple[int, int, int]:
    """(tunes, tunes with a changed pitch, pitches changed) of one ABC file."""
    from music21 import converter, stream

    from tunesmith.corpus.reader import carry_accidentals

    try:
        parsed = converter.parse(str(path), format="abc")
    except Exception:  # a file music21 cannot read is the reader's rejection, not counted here
        return 0, 0, 0
    changed = [carry_accidentals(score) for score in (parsed.scores if isinstance(parsed, stream.Opus) else [parsed])]
    return len(changed), sum(c > 0 for c in changed), sum(changed)


def files(corpus: str) -> list[Path]:
    if corpus == "nottingham":
        return sorted(NOTTINGHAM.glob("*.abc"))
    prefixes = ("erk",) if corpus == "erk" else GERMAN
    return sorted(f for f in essen_folder().glob("*.abc") if f.stem.rstrip("0123456789").startswith(prefixes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="*", default=["erk", "german", "nottingham"])
    args = parser.parse_args()
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        for corpus in args.corpora:
            results = list(pool.map(count, files(corpus), chunksize=4))
            tunes, hit, pitches = (sum(r[i] for r in results) for i in range(3))
            print(f"{corpus}: {pitches:,} pitches changed in {hit:,} of {tunes:,} tunes")


if __name__ == "__main__":
    main()
