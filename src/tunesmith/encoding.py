"""Song ⇄ tokens, and the vocabulary that maps tokens to ids.

A melody becomes one token per time step: a MIDI pitch number ("60") where a note starts,
``r`` where a rest starts, ``_`` where the previous note or rest is held. A song is framed
by ``<s>`` and ``</s>``. Consecutive rests are merged and trailing rests dropped, so
encode → decode → encode gives back the same tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.song import Note

PAD = "<pad>"
START = "<s>"
END = "</s>"
REST = "r"
HOLD = "_"
SPECIALS = (PAD, START, END, HOLD, REST)


def encode_notes(notes: Iterable[Note]) -> list[str]:
    """Tokens of a note list (no start/end tokens). Consecutive rests merge; trailing rests go."""
    merged: list[Note] = []
    for note in notes:
        if note.steps <= 0:
            continue
        if note.pitch is None and merged and merged[-1].pitch is None:
            merged[-1] = Note(None, merged[-1].steps + note.steps)
        else:
            merged.append(note)
    while merged and merged[-1].pitch is None:
        merged.pop()
    tokens: list[str] = []
    for note in merged:
        tokens.append(REST if note.pitch is None else str(note.pitch))
        tokens.extend([HOLD] * (note.steps - 1))
    return tokens


def decode_tokens(tokens: Iterable[str]) -> list[Note]:
    """Notes of a token sequence. ``<s>``/``<pad>`` are skipped, ``</s>`` ends the song, a leading
    hold is read as a rest. Raises TunesmithError on a token that is none of the above."""
    notes: list[list] = []
    for token in tokens:
        if token in (START, PAD):
            continue
        if token == END:
            break
        if token == HOLD:
            if notes:
                notes[-1][1] += 1
            else:
                notes.append([None, 1])
        elif token == REST:
            notes.append([None, 1])
        else:
            notes.append([parse_pitch_token(token), 1])
    return [Note(p, s) for p, s in notes]


def parse_pitch_token(token: str) -> int:
    """MIDI number of a pitch token, with a one-line error for anything else."""
    try:
        pitch = int(token)
    except ValueError:
        raise TunesmithError(f"unknown token {token!r}: expected a MIDI pitch, 'r' (rest) or '_' (hold)") from None
    if not 0 <= pitch <= 127:
        raise TunesmithError(f"pitch token {token!r} is outside MIDI 0..127")
    return pitch


def is_pitch(token: str) -> bool:
    return token.isdigit()


class Vocabulary:
    """Deterministic token ↔ id map: specials first, then pitches in ascending order.

    Built from the tokens seen in a corpus (never from ``set()`` iteration order), saved as JSON.
    """

    def __init__(self, tokens: Sequence[str]):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise TunesmithError("vocabulary has duplicate tokens")
        missing = [t for t in SPECIALS if t not in self.index]
        if missing:
            raise TunesmithError(f"vocabulary lacks the special tokens {missing!r}")
        self.pad, self.start, self.end = self.index[PAD], self.index[START], self.index[END]
        self.hold, self.rest = self.index[HOLD], self.index[REST]
        self.pitches = sorted(int(t) for t in self.tokens if is_pitch(t))
        self.pitch_ids = [self.index[str(p)] for p in self.pitches]

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]]) -> Vocabulary:
        pitches: set[int] = set()
        for seq in sequences:
            pitches.update(int(t) for t in seq if is_pitch(t))
        return cls(list(SPECIALS) + [str(p) for p in sorted(pitches)])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of tokens; raises TunesmithError naming the first token the vocabulary lacks."""
        try:
            return [self.index[t] for t in tokens]
        except KeyError as exc:
            raise TunesmithError(f"token {exc.args[0]!r} is not in the vocabulary") from None

    def tokens_of(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def nearest_pitch(self, pitch: int) -> int:
        """The known pitch closest to ``pitch`` (the lower one on a tie)."""
        return min(self.pitches, key=lambda p: (abs(p - pitch), p))

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls(json.loads(text)["tokens"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
