"""Primers: the opening a melody continues, given as tokens ("67 _ _ _ 65 _") or as a file.

Token primers are written in the OUTPUT key and moved into the model's key (C major / A minor);
primer files go through the corpus reader, which already moves them there. A pitch the model's
vocabulary lacks becomes the nearest pitch it knows, with a warning (the original crashed).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tunesmith.encoding import END, HOLD, REST, START, Vocabulary, encode_notes
from tunesmith.errors import TunesmithError
from tunesmith.generate.constraints import note_number
from tunesmith.song import Song, grid_lengths


class TunesmithWarning(UserWarning):
    """Something was adjusted to make the request work (the CLI prints these in yellow)."""


def parse_primer(text: str) -> list[str]:
    """Tokens of a primer string: MIDI numbers or note names ("G4"), ``_`` (hold) and ``r`` (rest).

    Raises TunesmithError quoting the first bad item, or when the primer starts with a hold.
    """
    tokens: list[str] = []
    for item in text.replace(",", " ").split():
        if item in (HOLD, REST):
            tokens.append(item)
        elif item in (START, END):
            raise TunesmithError(f"primer {text!r}: leave out {item!r}, the generator adds it")
        else:
            try:
                tokens.append(str(note_number(item)))
            except TunesmithError:
                raise TunesmithError(
                    f"malformed primer {text!r}: {item!r} is not a pitch (60 or C4), '_' (hold) or 'r' (rest)"
                ) from None
    if tokens and tokens[0] == HOLD:
        raise TunesmithError(f"malformed primer {text!r}: it starts with '_' (a hold needs a note before it)")
    return tokens


LONGEST_NOTE = 16  # quarters: a note a whole bar of 4/1 long (Essen writes such bars)


def read_primer_file(path: str | Path, steps_per_quarter: int) -> Song:
    """The first tune of a file any corpus format can hold, as a Song in C major / A minor.

    Any note length on the step grid is taken, up to :data:`LONGEST_NOTE` quarters: the list of
    lengths the training songs keep to is a rule for a corpus, and a tune tunesmith wrote (a
    note of two and a half quarters, say) must open again. Raises TunesmithError when the file is
    missing or the reader rejects the tune.
    """
    from tunesmith.corpus.reader import make_jobs, read_job
    from tunesmith.corpus.sources import SourceFile

    path = Path(path)
    if not path.is_file():
        raise TunesmithError(f"no primer file at {str(path)!r}")
    jobs = make_jobs(SourceFile(path, str(path)))
    lengths = grid_lengths(steps_per_quarter, LONGEST_NOTE)
    settings = {"steps_per_quarter": steps_per_quarter, "accepted_durations": lengths}
    result = read_job(jobs[0], settings)
    if "song" not in result:
        raise TunesmithError(f"cannot use primer file {str(path)!r}: {result['reason']} ({result['detail']})")
    song = Song.from_dict(result["song"])
    if result.get("counts", {}).get("meter_changes"):
        warnings.warn(f"the tune changes meter mid-tune; it is read in {song.meter} throughout (a melody has one "
                      "meter), so the bars after a change are counted in it", TunesmithWarning, stacklevel=2)  # fmt: skip
    return song


def primer_tokens_of_song(song: Song) -> list[str]:
    """Body tokens of a primer Song, keeping a trailing rest (its length matters for what follows)."""
    tokens = encode_notes(song.notes)
    missing = song.total_steps - len(tokens)
    if missing > 0:
        tokens += [REST] + [HOLD] * (missing - 1)
    return tokens


def to_model_key(tokens: list[str], shift: int, vocab: Vocabulary) -> list[str]:
    """Move output-key tokens down by ``shift`` semitones and map unknown pitches to the nearest known.

    Each replaced pitch gives one TunesmithWarning naming the original and its replacement.
    """
    result = []
    for token in tokens:
        if token in (HOLD, REST):
            result.append(token)
            continue
        pitch = int(token) - shift
        if str(pitch) not in vocab:
            nearest = vocab.nearest_pitch(pitch)
            warnings.warn(
                f"primer pitch {int(token)} is outside what the model knows; using {nearest + shift} instead",
                TunesmithWarning, stacklevel=2,
            )  # fmt: skip
            pitch = nearest
        result.append(str(pitch))
    return result
