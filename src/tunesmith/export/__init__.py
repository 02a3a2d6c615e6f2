"""Export stage: a Song or Melody → the files musicians use, one module per format.

``write(item, path)`` picks the format from the suffix: .mid/.midi, .musicxml/.xml, .wav,
.png (piano roll), .svg (engraved score), .abc (ABC notation), .json (tokens, notes and every parameter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError

# Suffix → (format name, module, function). Modules are imported only when used.
FORMATS = {
    ".mid": ("mid", "tunesmith.export.midi", "write_midi"),
    ".midi": ("mid", "tunesmith.export.midi", "write_midi"),
    ".musicxml": ("musicxml", "tunesmith.export.musicxml", "write_musicxml"),
    ".xml": ("musicxml", "tunesmith.export.musicxml", "write_musicxml"),
    ".wav": ("wav", "tunesmith.export.audio", "write_wav"),
    ".png": ("png", "tunesmith.export.pianoroll", "write_pianoroll"),
    ".svg": ("svg", "tunesmith.export.score", "write_score"),
    ".abc": ("abc", "tunesmith.export.abc", "write_abc"),
    ".json": ("json", "", ""),
}
# The --formats names, in the order files are written.
FORMAT_SUFFIXES = {"mid": ".mid", "musicxml": ".musicxml", "wav": ".wav", "png": ".png", "svg": ".svg", "abc": ".abc",
                   "json": ".json"}


@dataclass
class ExportConfig:
    """How a melody sounds and looks once written."""

    bpm: float = 0.0  # quarter notes per minute; 0 = the instrument's usual tempo (100 without one)
    program: int = 1  # General MIDI instrument, 1..128 (1 = piano, 74 = flute, 41 = violin)
    velocity: int = 80  # MIDI velocity of unaccented notes; downbeats +16, beats +6
    sample_rate: int = 44100  # WAV samples per second
    soundfont: str = ""  # "" = $TUNESMITH_SOUNDFONT or the system's GM soundfont
    dpi: int = 120  # piano-roll resolution
    instrument: str = ""  # fiddle|whistle|flute|accordion|voice|piano: sets program, range, tempo; "" = none
    humanize: float | None = None  # 0..1: timing that drifts, phrase dynamics, a final ritardando (default 0.3 for WAV, off for MIDI)
    humanize_seed: int | None = None  # humanize randomness; None = the melody's own seed (params["seed"]), else 0
    chord_program: int = 25  # General MIDI instrument of the chord track (25 = nylon guitar)

    @property
    def gm_program(self) -> int:
        """The melody's General MIDI program: the instrument's when one is named, else ``program``."""
        if self.instrument:
            from tunesmith.instruments import instrument

            return instrument(self.instrument).program
        return self.program

    def validate(self) -> ExportConfig:
        """Check every field (one-line TunesmithError naming the option); a ``bpm`` of 0 becomes the
        instrument's usual tempo (100 without an instrument)."""
        if self.instrument:
            from tunesmith.instruments import instrument

            found = instrument(self.instrument)
            self.bpm = self.bpm or found.bpm
        self.bpm = self.bpm or 100.0
        if self.humanize is not None and not (isinstance(self.humanize, (int, float)) and 0 <= self.humanize <= 1):
            raise TunesmithError(f"--humanize must be in 0..1, got {self.humanize!r}")
        if not 1 <= self.chord_program <= 128:
            raise TunesmithError(f"chord program must be a General MIDI number 1..128, got {self.chord_program!r}")
        if not 10 <= self.bpm <= 400:
            raise TunesmithError(f"--bpm must be in 10..400, got {self.bpm!r}")
        if not 1 <= self.program <= 128:
            raise TunesmithError(f"--program must be a General MIDI number 1..128, got {self.program!r}")
        if not 1 <= self.velocity <= 111:
            raise TunesmithError(f"velocity must be in 1..111 (accents add up to 16), got {self.velocity!r}")
        if not 8000 <= self.sample_rate <= 192000:
            raise TunesmithError(f"sample rate must be in 8000..192000 Hz, got {self.sample_rate!r}")
        return self


def export_config_of(item: Any, **options: Any) -> ExportConfig:
    """The export settings stored with a Melody (``params["export"]``), overridden by ``options``."""
    names = {f.name for f in fields(ExportConfig)}
    stored = getattr(item, "params", {}).get("export", {}) if hasattr(item, "params") else {}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TunesmithError(f"unknown export option {unknown[0]!r}; known: {', '.join(sorted(names))}")
    config = replace(ExportConfig(**{k: v for k, v in stored.items() if k in names}), **options)
    if config.humanize_seed is None and isinstance(getattr(item, "params", {}).get("seed"), int):
        config.humanize_seed = item.params["seed"]
    return config.validate()


def readable_json(data: dict[str, Any]) -> str:
    """JSON with one top-level key per line: long token and note lists stay on one line each."""
    lines = [f" {json.dumps(k)}: {json.dumps(v, indent=None if k in ('tokens', 'song') else 1)}" for k, v in data.items()]
    return "{\n" + ",\n".join(line.replace("\n", "\n ") for line in lines) + "\n}\n"


def write(item: Any, path: str | Path, **options: Any) -> Path:
    """Write a Song or Melody at ``path`` in the format its suffix names; returns the path.

    ``options`` are ExportConfig fields (``bpm=120, program=74``…).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise TunesmithError(f"cannot write {str(path)!r}: unknown suffix; known: {', '.join(FORMATS)}")
    song = getattr(item, "song", item)
    config = export_config_of(item, **options)
    if config.instrument:
        from tunesmith.instruments import check_range

        check_range([n.pitch for n in song.notes if n.pitch is not None], config.instrument)
    if suffix == ".json":
        data = item.to_dict() if hasattr(item, "song") else {"song": song.to_dict()}
        path.write_text(readable_json(data), encoding="utf-8")
        return path
    import importlib

    _, module, function = FORMATS[suffix]
    return getattr(importlib.import_module(module), function)(song, path, config)


__all__ = ["FORMATS", "FORMAT_SUFFIXES", "ExportConfig", "export_config_of", "write"]
