"""A simple accompaniment from a Song's chords: bass and chord in the meter's dance pattern.

* 2/4: oom-pah (bass, chord); 3/4: oom-pah-pah; 4/4: bass, chord, bass on the fifth, chord;
* compound meters (6/8, 9/8, 12/8): per dotted-quarter beat a bass quarter then a chord eighth;
* other meters: bass on the downbeat, chords on the other beats.

A chord that changes off the pattern gets a bass note where it starts. Pure: steps in, events out.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.export.notation import bar_lines, beat_steps

# Semitones above the root of each chord quality of tunesmith.song.Chord.
QUALITY_INTERVALS = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "dim": (0, 3, 6),
                     "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10)}  # fmt: skip
BASS_LOW = 40  # E2: bass notes lie in E2..D#3
CHORD_LOW = 55  # G3: chord tones lie in G3..F#4, below most melodies


@dataclass(frozen=True)
class Event:
    """Pitches sounding together from grid step ``start`` for ``steps`` steps; ``bass`` or chord."""

    start: int
    steps: int
    pitches: tuple[int, ...]
    bass: bool


def pattern(meter: str, steps_per_quarter: int, bar: int) -> list[tuple[int, int, str]]:
    """(offset, length, role) of each hit in one full bar; role is "root", "fifth" or "chord"."""
    num, den = (int(x) for x in meter.split("/"))
    beat = beat_steps(meter, steps_per_quarter)
    beats = max(bar // beat, 1)
    if den == 8 and num % 3 == 0 and num > 3:  # compound: oom (2/3 beat) – pah (1/3 beat)
        third = beat // 3
        return [hit for b in range(beats) for hit in ((b * beat, 2 * third, "root" if b % 2 == 0 else "fifth"),
                                                       (b * beat + 2 * third, third, "chord"))]  # fmt: skip
    roles = ["root", "chord", "fifth", "chord"] if beats == 4 else ["root"] + ["chord"] * (beats - 1)
    return [(b * beat, beat, role) for b, role in enumerate(roles)]


def voicing(root: int, quality: str, role: str) -> tuple[int, ...]:
    """MIDI pitches of one hit: the root or fifth in the bass register, or the chord in close position."""
    if role == "root":
        return (BASS_LOW + (root - BASS_LOW) % 12,)
    if role == "fifth":
        return (BASS_LOW + (root + 7 - BASS_LOW) % 12,)
    return tuple(sorted(CHORD_LOW + (root + i - CHORD_LOW) % 12 for i in QUALITY_INTERVALS[quality]))


def accompaniment(song) -> list[Event]:
    """The accompaniment events of ``song`` (empty when it has no chords), in time order."""
    chords = sorted(getattr(song, "chords", []) or [], key=lambda c: c.start)
    if not chords:
        return []
    from tunesmith.song import bar_steps

    bar = bar_steps(song.meter, song.steps_per_quarter)
    hits = pattern(song.meter, song.steps_per_quarter, bar)
    lines = bar_lines(song)
    events = []
    for left, right in zip(lines, lines[1:], strict=False):
        shift = bar - (right - left) if left == 0 and right - left < bar else 0  # a pickup is a bar's end
        for offset, length, role in hits:
            start = left + offset - shift
            if left <= start < right:
                events.append((start, min(start + length, right), role))
    starts = {e[0] for e in events}
    for chord in chords:  # a change off the pattern: the bass moves where the chord starts
        if chord.start not in starts and chord.start < lines[-1]:
            after = [e[0] for e in events if e[0] > chord.start]
            events.append((chord.start, min(after + [chord.start + chord.steps]), "root"))
    result = []
    for start, end, role in sorted(events):
        active = [c for c in chords if c.start <= start < c.start + c.steps]
        if active:
            chord = active[-1]
            end = min(end, chord.start + chord.steps)
            result.append(Event(start, end - start, voicing(chord.root, chord.quality, role), role != "chord"))
    return result
