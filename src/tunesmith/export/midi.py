"""Standard MIDI file (type 1): tempo, time signature, key signature, GM instrument, velocities."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.export.notation import beat_steps
from tunesmith.song import Song, bar_steps, key_name, tonic_pitch_class

TICKS_PER_QUARTER = 480


def velocity_at(position: int, beat_steps: int, config) -> int:
    """Velocity of a note starting ``position`` steps into its bar: downbeats loudest, then beats.

    A light metric accent keeps a synthesised melody from sounding mechanical.
    """
    if position == 0:
        return min(127, config.velocity + 16)
    if position % beat_steps == 0:
        return min(127, config.velocity + 6)
    return config.velocity


def mido_key(song: Song) -> str:
    """Key-signature name mido accepts ("Bb", "F#m")."""
    name = key_name(tonic_pitch_class(song.key), song.mode).replace("-", "b")
    return name + ("m" if song.mode == "minor" else "")


def to_midi_file(song: Song, config):
    """A ``mido.MidiFile`` of the song: a conductor track (tempo, meter, key) and the melody track."""
    try:
        import mido
    except ImportError:
        raise TunesmithError("writing MIDI needs mido: pip install mido") from None
    ticks = TICKS_PER_QUARTER // song.steps_per_quarter
    num, den = (int(x) for x in song.meter.split("/"))
    conductor = mido.MidiTrack([
        mido.MetaMessage("track_name", name=song.title or "tunesmith", time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(config.bpm), time=0),
        mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0),
        mido.MetaMessage("key_signature", key=mido_key(song), time=0),
        mido.MetaMessage("end_of_track", time=0),
    ])  # fmt: skip
    melody = mido.MidiTrack([
        mido.MetaMessage("track_name", name="melody", time=0),
        mido.Message("program_change", program=config.program - 1, channel=0, time=0),
    ])  # fmt: skip
    bar, beat = bar_steps(song.meter, song.steps_per_quarter), beat_steps(song.meter, song.steps_per_quarter)
    first_bar = song.bar_starts[0] if song.bar_starts else 0
    step, wait = 0, 0
    for note in song.notes:
        if note.pitch is None:
            wait += note.steps * ticks
        else:
            velocity = velocity_at((step - first_bar) % bar, beat, config)
            melody.append(mido.Message("note_on", note=note.pitch, velocity=velocity, channel=0, time=wait))
            # Release a few ticks early so repeated pitches are heard as separate notes.
            length = note.steps * ticks
            melody.append(mido.Message("note_off", note=note.pitch, velocity=0, channel=0, time=length - 2))
            wait = 2
        step += note.steps
    melody.append(mido.MetaMessage("end_of_track", time=wait))
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.extend([conductor, melody])
    return midi


def write_midi(song: Song, path: str | Path, config) -> Path:
    """Write ``song`` as a MIDI file at ``path`` with the tempo, instrument and velocity of ``config``."""
    path = Path(path)
    to_midi_file(song, config).save(str(path))
    return path
