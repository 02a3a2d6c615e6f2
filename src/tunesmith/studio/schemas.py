"""The studio API's request bodies: every field typed and bounded, so a bad value is a 422 that
names the field before any work starts. Text fields are patterns or are only ever displayed.

The generation settings are stated once, by :class:`~tunesmith.generate.GenerationConfig`: each
request field :func:`setting` makes takes its default, help text, bounds and choices from the
dataclass field's metadata, tightened only where the service caps a value (a server people may
leave running).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunesmith.generate.config import INSTRUMENT_NAMES, SCHEMES, GenerationConfig
from tunesmith.generate.regenerate import STEP_SCHEMES
from tunesmith.harmony.theory import QUALITIES
from tunesmith.settings import field_comments
from tunesmith.song import MODES

# Bounds of the service.
MAX_NUM = 16  # melodies or alternatives per request
MAX_BARS = 128
MAX_STEPS = 4096  # tokens of one melody: 128 bars of 4/2 at 4 steps per quarter
MAX_FIXES = 64
MAX_TEXT = 200
MAX_ABC = 65536  # characters of a typed ABC primer
FORMATS = ("mid", "musicxml", "abc", "wav", "json", "svg")
_GENERATION = {f.name: f for f in dataclasses.fields(GenerationConfig)}
CHORD_SPANS = _GENERATION["chord_span"].metadata["choices"]


def setting(name: str, *, low: float | None = None, high: float | None = None, default: Any = dataclasses.MISSING):
    """A pydantic Field for GenerationConfig's field ``name``: its default (or ``default``), its
    help text, its bounds (``low``/``high`` may only narrow them) and its choices."""
    source = _GENERATION[name]
    meta = source.metadata
    bounds: dict[str, float] = {}
    floor, ceiling = meta.get("min"), meta.get("max")
    if low is not None and (floor is None or low > floor):
        floor, low_open = low, False
    else:
        low_open = meta.get("min_open", False)
    if high is not None and (ceiling is None or high < ceiling):
        ceiling, high_open = high, False
    else:
        high_open = meta.get("max_open", False)
    if floor is not None:
        bounds["gt" if low_open else "ge"] = floor
    if ceiling is not None:
        bounds["lt" if high_open else "le"] = ceiling
    value = source.default if default is dataclasses.MISSING else default
    return Field(value, description=field_comments(GenerationConfig).get(name, ""), **bounds)


Token = Annotated[str, Field(pattern=r"^(\d{1,3}|r|_)$", max_length=3)]
KEY = r"^[A-Ga-g](#|b|-)?$"
METER = r"^\d{1,2}/\d{1,2}$"
Name = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Sampling(Strict):
    """How each step is chosen, and the scale/range constraints (in the melody's key)."""

    scheme: Literal[SCHEMES] = setting("scheme")
    temperature: float = setting("temperature", low=0.05, high=5.0)
    top_k: int = setting("top_k", high=64)
    top_p: float = setting("top_p")
    mixed_p: float = setting("mixed_p")
    beam_size: int = setting("beam_size", high=8)
    scale: bool = setting("scale")
    range: str = Field("", max_length=16, pattern=r"^$|^[A-Ga-g0-9#b-]{2,6}-[A-Ga-g0-9#b-]{2,6}$",
                       description=field_comments(GenerationConfig)["range"])  # fmt: skip

    def settings(self) -> dict[str, Any]:
        return self.model_dump()


class ComposeRequest(Sampling):
    """Compose ``num`` new melodies (the fields of GenerationConfig the page sets)."""

    model: Name | None = None
    num: int = setting("num", high=MAX_NUM)
    bars: int = setting("bars", high=MAX_BARS, default=16)
    key: str = Field("C", pattern=KEY)
    mode: Literal[MODES] = "major"
    meter: str = Field("4/4", pattern=METER)
    seed: int | None = setting("seed", high=2**31 - 1)
    primer: str = Field("", max_length=2000, pattern=r"^[A-Ga-g0-9#_r ,-]*$")
    primer_abc: str = Field("", max_length=MAX_ABC)
    instrument: Literal[INSTRUMENT_NAMES] | None = setting("instrument")
    chords: bool = setting("chords")
    chord_span: Literal[CHORD_SPANS] = setting("chord_span")
    max_copy: int | None = setting("max_copy")
    candidates: int = setting("candidates", high=8)
    form: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9' ]*$",
                             description="phrase form: AABA, \"A A' B A\", \"A4 A4 B4 A4\" or none; empty = one drawn from the corpus")  # fmt: skip
    pickup: float | None = setting("pickup")

    def settings(self) -> dict[str, Any]:
        data = self.model_dump(exclude={"model", "primer_abc"})
        data["form"] = (self.form or "").strip() or None
        if self.primer_abc:  # the file's meter and mode fill in only what the request leaves out
            data["primer"] = ""
            data.update({name: None for name in ("mode", "meter") if name not in self.model_fields_set})
        return data


class ChordIn(Strict):
    """A chord symbol over steps ``start``..``start + steps`` (the harmony stage's Chord)."""

    start: int = Field(ge=0, le=MAX_STEPS)
    steps: int = Field(ge=1, le=MAX_STEPS)
    root: int = Field(ge=0, le=11)
    quality: Literal[QUALITIES]
    roman: str = Field("", max_length=12, pattern=r"^[A-Za-z0-9#b+°ø-]*$")
    symbol: str = Field(max_length=16, pattern=r"^[A-G][#b]{0,2}[a-z0-9#b+°ø()/A-G-]*$")  # a root, then its kind


class SongIn(Strict):
    """The parts of a Song the studio keeps; the notes are rebuilt from the tokens."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    steps_per_quarter: int = Field(4, ge=1, le=16)
    meter: str = Field("4/4", pattern=METER)
    bar_starts: list[Annotated[int, Field(ge=0, le=MAX_STEPS)]] = Field(default_factory=list, max_length=MAX_STEPS)
    mode: Literal[MODES] = "major"
    key: str = Field("C", pattern=KEY)
    transposition: int = Field(0, ge=-12, le=12)
    title: str = Field("", max_length=MAX_TEXT)
    source: str = Field("", max_length=MAX_TEXT)
    chords: list[ChordIn] = Field(default_factory=list, max_length=MAX_STEPS)
    phrase_starts: list[Annotated[int, Field(ge=0, le=MAX_STEPS)]] = Field(default_factory=list, max_length=MAX_STEPS)
    phrase_source: str = Field("", max_length=20, pattern=r"^[a-z ]*$")

    @field_validator("title", "source")
    @classmethod
    def _one_line(cls, text: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError("one line of text: no line breaks or control characters")
        return text

    @field_validator("phrase_starts")
    @classmethod
    def _phrases_in_order(cls, starts: list[int]) -> list[int]:
        if starts and (starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:]))):
            raise ValueError("phrase starts begin with 0 and increase")
        return starts


class MelodyIn(Strict):
    """A melody as ``Melody.to_dict`` writes it (the client keeps every version in this form)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    format: Literal["tunesmith-melody"] = "tunesmith-melody"
    version: int = Field(1, ge=1, le=99)
    tokens: list[Token] = Field(min_length=1, max_length=MAX_STEPS)
    song: SongIn
    params: dict[str, Any] = Field(default_factory=dict, max_length=64)

    @field_validator("tokens")
    @classmethod
    def _first_not_hold(cls, tokens: list[str]) -> list[str]:
        if tokens[0] == "_":
            raise ValueError("a melody cannot start with '_' (a hold needs a note before it)")
        if any(t not in ("r", "_") and int(t) > 127 for t in tokens):
            raise ValueError("pitches are MIDI numbers 0..127")
        return tokens


class FixIn(Strict):
    step: int = Field(ge=0, le=MAX_STEPS)
    pitch: int | None = Field(ge=0, le=127)


class RegenerateRequest(Sampling):
    """Regenerate bars ``bars[0]..bars[1]`` of ``melody``: ``num`` alternatives."""

    scheme: Literal[STEP_SCHEMES] = setting("scheme")  # one step at a time: the candidates are rescored, not beamed
    model: Name | None = None
    melody: MelodyIn
    bars: tuple[Annotated[int, Field(ge=0, le=MAX_BARS)], Annotated[int, Field(ge=0, le=MAX_BARS)]]
    num: int = Field(4, ge=1, le=MAX_NUM)
    seed: int | None = setting("seed", high=2**31 - 1)
    locked: list[Annotated[int, Field(ge=0, le=MAX_BARS)]] = Field(default_factory=list, max_length=MAX_BARS + 1)
    fixes: list[FixIn] = Field(default_factory=list, max_length=MAX_FIXES)

    @field_validator("bars")
    @classmethod
    def _ordered(cls, bars: tuple[int, int]) -> tuple[int, int]:
        if bars[0] > bars[1]:
            raise ValueError("the first bar comes after the last")
        return bars

    def settings(self) -> dict[str, Any]:
        return self.model_dump(include=set(Sampling.model_fields))


class MelodyRequest(Strict):
    """A melody to engrave."""

    melody: MelodyIn


class HarmonizeRequest(Strict):
    """A melody to give chord symbols, one per bar or half bar (``auto``: what the harmoniser learned)."""

    melody: MelodyIn
    chord_span: Literal[CHORD_SPANS] = setting("chord_span")


class ExportRequest(Strict):
    """A melody to download in ``format``, played at ``bpm`` by General MIDI ``program``, with
    ``humanize`` (0..1: drifting timing, phrase dynamics, a final ritardando; default: the
    export's own, 0.3 for WAV, off for MIDI)."""

    melody: MelodyIn
    format: Literal[FORMATS] = "mid"
    bpm: float = Field(100.0, ge=20.0, le=300.0)
    program: int = Field(1, ge=1, le=128)
    humanize: float | None = Field(None, ge=0.0, le=1.0)
