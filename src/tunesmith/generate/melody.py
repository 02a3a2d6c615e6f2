"""``Melody``: one generated tune — its tokens, the Song they spell, and how it was made."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.encoding import HOLD, decode_tokens
from tunesmith.errors import TunesmithError
from tunesmith.song import Song

MELODY_FORMAT = "tunesmith-melody"
MELODY_VERSION = 1
_TOKEN = re.compile(r"^(\d{1,3}|r|_)$")  # a body token: a MIDI pitch, a rest, a hold


def _check_song(song: Song) -> None:
    """ValueError naming the first of ``song``'s fields (read from a file) that no tunesmith song has."""
    from tunesmith.song import MODES, bar_steps, tonic_pitch_class

    if not isinstance(song.steps_per_quarter, int) or not 1 <= song.steps_per_quarter <= 64:
        raise ValueError(f"steps_per_quarter must be a whole number in 1..64, got {song.steps_per_quarter!r}")
    bar_steps(str(song.meter), song.steps_per_quarter)  # ValueError for a meter no score can write
    tonic_pitch_class(str(song.key))
    if song.mode not in MODES:
        raise ValueError(f"mode must be major or minor, got {song.mode!r}")
    for name in ("bar_starts", "phrase_starts"):
        values = getattr(song, name)
        if not isinstance(values, list) or not all(isinstance(v, int) and v >= 0 for v in values) \
                or values != sorted(set(values)):  # fmt: skip
            raise ValueError(f"{name} must be increasing step numbers")
    if not isinstance(song.transposition, int) or not -12 <= song.transposition <= 12:
        raise ValueError(f"transposition must be a whole number in -12..12, got {song.transposition!r}")
    if not all(isinstance(c.start, int) and isinstance(c.steps, int) and isinstance(c.symbol, str)
               for c in song.chords):  # fmt: skip
        raise ValueError("chords must each have a start, a length in steps and a symbol")


@dataclass
class Melody:
    """A generated melody.

    ``tokens`` are the body tokens in the output key (primer included, no ``<s>``/``</s>``);
    ``song`` is the same music as notes with meter, key and bar lines (``song.transposition``:
    semitones from the output key to the model's C major / A minor); ``params`` holds every
    setting of the run (seed included), the model's fingerprint and ``ended_by`` ("end token"
    or "length"). :attr:`model_tokens` are the tokens the model wrote, so a melody can go back in.
    """

    tokens: list[str]
    song: Song
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def bars(self) -> float:
        """Length in bars of the melody's meter (fractional for an early end)."""
        from tunesmith.song import bar_steps

        return self.song.total_steps / bar_steps(self.song.meter, self.song.steps_per_quarter)

    @property
    def model_tokens(self) -> list[str]:
        """The body tokens in the model's key (C major / A minor), as the model wrote them."""
        from tunesmith.encoding import is_pitch

        shift = self.song.transposition
        return [str(int(t) + shift) if is_pitch(t) else t for t in self.tokens]

    def to_dict(self) -> dict[str, Any]:
        return {"format": MELODY_FORMAT, "version": MELODY_VERSION, "tokens": self.tokens,
                "song": self.song.to_dict(), "params": self.params}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Melody:
        """The melody ``to_dict`` wrote; a one-line TunesmithError naming the first field that is
        not what tunesmith writes. The notes are rebuilt from the tokens (the tokens are the music)."""
        if not isinstance(data, dict) or data.get("format") != MELODY_FORMAT:
            raise TunesmithError("not a tunesmith melody file (its 'format' is not 'tunesmith-melody')")
        if data.get("version", MELODY_VERSION) != MELODY_VERSION:  # files before the field are version 1
            raise TunesmithError(f"melody file version {data.get('version')!r}; this tunesmith reads {MELODY_VERSION}")
        tokens, song, params = data.get("tokens"), data.get("song"), data.get("params", {})
        if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) and _TOKEN.match(t) for t in tokens)):
            raise TunesmithError("not a valid tunesmith melody file: 'tokens' must be a list of pitch numbers, "
                                 "'r' and '_'")  # fmt: skip
        if tokens[0] == HOLD:
            raise TunesmithError("not a valid tunesmith melody file: 'tokens' starts with '_' (a hold needs a note)")
        if not isinstance(song, dict) or not isinstance(params, dict):
            raise TunesmithError("not a valid tunesmith melody file: 'song' and 'params' must be objects")
        try:
            song = Song.from_dict({**song, "notes": [], "chords": song.get("chords") or []})
            song.notes = decode_tokens(tokens)
            _check_song(song)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise TunesmithError(f"not a valid tunesmith melody file: 'song': {exc}") from None
        return cls(list(tokens), song, dict(params))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> Melody:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except (OSError, ValueError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a JSON text"
            raise TunesmithError(f"cannot read melody {str(path)!r}: {reason}") from None
        try:
            return cls.from_dict(data)
        except TunesmithError as exc:
            raise TunesmithError(f"cannot use melody {str(path)!r}: {exc}") from None

    def write(self, path: str | Path, **options: Any) -> Path:
        """Write the melody in the format its suffix names (.mid, .musicxml, .wav, .png, .svg, .json).

        ``options`` override the export settings stored in ``params["export"]`` (bpm, program…).
        """
        from tunesmith.export import write

        return write(self, path, **options)
