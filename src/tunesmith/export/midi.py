"""Standard MIDI file (type 1): tempo, meter, key, the melody track and, with chords, an accompaniment.

The notes are *performed*: metric accents always, and with ``humanize`` > 0 drifting timing, a
phrase arch in velocity and a final ritardando (:mod:`tunesmith.export.humanize`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunesmith.errors import TunesmithError
from tunesmith.export import humanize as hz
from tunesmith.export.accompaniment import accompaniment
from tunesmith.export.notation import bar_lines, beat_steps, phrase_starts, written_key
from tunesmith.song import Song, bar_steps, one_line

TICKS_PER_QUARTER = 480
GAP_TICKS = 12  # a note is released this early so repeated pitches are heard as separate notes


def velocity_at(position: int, beat_steps: int, config) -> int:
    """Velocity of a note starting ``position`` steps into its bar: downbeats loudest, then beats."""
    return min(127, config.velocity + hz.metric_accent(position, beat_steps))


def mido_key(song: Song) -> str:
    """Key-signature name mido accepts ("Bb", "F#m")."""
    name = written_key(song)[0].replace("-", "b")
    return name + ("m" if song.mode == "minor" else "")


@dataclass
class Performance:
    """The played notes: MIDI pitch, onset and release in ticks, velocity; and the chord track's."""

    melody: list[tuple[int, int, int, int]]
    chords: list[tuple[int, int, int, int]]
    grid_onsets: list[int]  # ticks of the melody's onsets on the grid, for statistics
    downbeats: list[bool]


def perform(song: Song, config, amount: float) -> Performance:
    """The performance of ``song`` at humanize ``amount`` (0 = on the grid), seeded by
    ``config.humanize_seed`` together with the notes (melodies of one run play differently)."""
    spq, ticks = song.steps_per_quarter, TICKS_PER_QUARTER / song.steps_per_quarter
    rng = np.random.default_rng([config.humanize_seed or 0, zlib.crc32(repr(song.notes).encode())])
    bar, beat = bar_steps(song.meter, spq), beat_steps(song.meter, spq)
    first_bar = song.bar_starts[0] if song.bar_starts else 0
    lines = bar_lines(song)
    total = song.total_steps
    onsets, ends, pitches, step = [], [], [], 0
    for note in song.notes:
        if note.pitch is not None:
            onsets.append(step), ends.append(step + note.steps), pitches.append(note.pitch)
        step += note.steps
    last_bar = max([line for line in lines if line < total], default=0)
    steps_per_ms = config.bpm / 60000 * spq
    offsets = hz.drift(len(onsets), amount, rng) * steps_per_ms
    warp = lambda s: hz.ritardando(np.asarray(s, dtype=float), last_bar, total, amount)  # noqa: E731
    played_on = warp(onsets) + offsets if onsets else np.zeros(0)
    played_off = warp(ends) + offsets if onsets else np.zeros(0)
    positions = [(s - first_bar) % bar for s in onsets]
    velocity = hz.velocities(onsets, positions, beat, config.velocity, amount, phrase_starts(song), total, rng)
    shift = 12 if config.instrument and _octave_up(config.instrument) else 0
    melody = []
    for i, pitch in enumerate(pitches):
        on = max(0, round(played_on[i] * ticks))
        off = round(played_off[i] * ticks) - GAP_TICKS
        if i + 1 < len(pitches):
            off = min(off, round(played_on[i + 1] * ticks) - GAP_TICKS)
        melody.append((pitch + shift, on, max(off, on + GAP_TICKS), velocity[i]))
    chords = []
    for event in accompaniment(song):
        lag = float(np.interp(event.start, onsets, offsets)) if onsets else 0.0
        on = max(0, round((warp([event.start])[0] + lag) * ticks))
        off = round((warp([event.start + event.steps])[0] + lag) * ticks) - GAP_TICKS
        level = config.velocity - (10 if event.bass else 20) + (hz.metric_accent((event.start - first_bar) % bar, beat) // 2)
        for pitch in event.pitches:
            chords.append((pitch, on, max(off, on + GAP_TICKS), max(1, level)))
    return Performance(melody, chords, [round(s * ticks) for s in onsets], [p == 0 for p in positions])


def _octave_up(name: str) -> bool:
    from tunesmith.instruments import instrument

    return instrument(name).octave_up


def _track(mido, name: str, channel: int, program: int, notes: list[tuple[int, int, int, int]]):
    """A MIDI track of (pitch, on tick, off tick, velocity) notes on ``channel``."""
    events = []
    for pitch, on, off, velocity in notes:
        events.append((on, 1, pitch, velocity))
        events.append((off, 0, pitch, 0))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                            mido.Message("program_change", program=program - 1, channel=channel, time=0)])  # fmt: skip
    now = 0
    for tick, is_on, pitch, velocity in sorted(events):  # releases sort before onsets at the same tick
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=GAP_TICKS))
    return track


def to_midi_file(song: Song, config, humanize: float = 0.0):
    """A ``mido.MidiFile``: a conductor track (tempo, meter, key), the melody, and the chords if any."""
    try:
        import mido
    except ImportError:
        raise TunesmithError("writing MIDI needs mido: pip install mido") from None
    num, den = (int(x) for x in song.meter.split("/"))
    # a MIDI file's text is Latin-1: other letters become "?" (the title stays whole in the other formats)
    name = (one_line(song.title) or "tunesmith").encode("latin-1", "replace").decode("latin-1")
    conductor = mido.MidiTrack([
        mido.MetaMessage("track_name", name=name, time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(config.bpm), time=0),
        mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0),
        mido.MetaMessage("key_signature", key=mido_key(song), time=0),
        mido.MetaMessage("end_of_track", time=0),
    ])  # fmt: skip
    performance = perform(song, config, humanize)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.extend([conductor, _track(mido, "melody", 0, config.gm_program, performance.melody)])
    if performance.chords:
        midi.tracks.append(_track(mido, "chords", 1, config.chord_program, performance.chords))
    return midi


def write_midi(song: Song, path: str | Path, config) -> Path:
    """Write ``song`` as a MIDI file at ``path``; humanized only when ``config.humanize`` asks."""
    path = Path(path)
    to_midi_file(song, config, config.humanize or 0.0).save(str(path))
    return path
