"""``Melody``: one generated tune — its tokens, the Song they spell, and how it was made."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.song import Song

MELODY_FORMAT = "tunesmith-melody"
MELODY_VERSION = 1


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
        if data.get("format") != MELODY_FORMAT:
            raise TunesmithError("not a tunesmith melody file (its 'format' is not 'tunesmith-melody')")
        return cls(list(data["tokens"]), Song.from_dict(data["song"]), dict(data.get("params", {})))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> Melody:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise TunesmithError(f"cannot read melody {str(path)!r}: {exc}") from None

    def write(self, path: str | Path, **options: Any) -> Path:
        """Write the melody in the format its suffix names (.mid, .musicxml, .wav, .png, .svg, .json).

        ``options`` override the export settings stored in ``params["export"]`` (bpm, program…).
        """
        from tunesmith.export import write

        return write(self, path, **options)
