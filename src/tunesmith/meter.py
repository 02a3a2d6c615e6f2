"""Bar geometry, in one place: where bars begin and end on the step grid.

A Song knows some bar lines (``bar_starts``: the steps at which bars begin; a pickup makes the
first one > 0). Past the last known bar line the music continues in regular bars of its meter.
Generation, export and evaluation all read bars through these functions, so they agree.

Bars are numbered as in a score: a pickup is bar 0, the first full bar is bar 1.
"""

from __future__ import annotations

from tunesmith.song import Song, bar_steps


def beat_steps(meter: str, steps_per_quarter: int) -> int:
    """Steps per counted beat: a dotted quarter in compound meters (6/8, 9/8, 12/8), else the denominator."""
    num, den = (int(x) for x in meter.split("/"))
    unit = steps_per_quarter * 4 // den if (steps_per_quarter * 4) % den == 0 else steps_per_quarter
    return unit * 3 if num % 3 == 0 and num > 3 and den == 8 else unit


def full_bar_starts(bar_starts: list[int], total_steps: int, bar_length: int) -> list[int]:
    """Every downbeat of a melody of ``total_steps`` steps: the known ``bar_starts`` before the
    end, then regular bars of ``bar_length`` after the last one (``[0]`` when none is known).

    >>> full_bar_starts([4, 20], 60, 16)
    [4, 20, 36, 52]
    """
    result = [s for s in sorted(set(bar_starts)) if s < total_steps] or [0]
    while result[-1] + bar_length < total_steps:
        result.append(result[-1] + bar_length)
    return result


def song_bar_starts(song: Song) -> list[int]:
    """:func:`full_bar_starts` of a Song (its meter, its length)."""
    return full_bar_starts(song.bar_starts, song.total_steps, bar_steps(song.meter, song.steps_per_quarter))


def bar_lines(song: Song) -> list[int]:
    """Step of every bar line from 0 to the end of the last bar, a pickup's included: what a
    score draws. The last bar is padded to a full bar, except where it is exactly what the
    pickup leaves of one (the pickup completes it, as folk tunes are written). An empty song
    still has one bar."""
    bar = bar_steps(song.meter, song.steps_per_quarter)
    total = max(song.total_steps, 1)
    starts = full_bar_starts(song.bar_starts or [0], total, bar)
    lines = ([0] if starts[0] > 0 else []) + starts
    pickup = starts[0] if len(lines) > 1 and lines[0] == 0 and starts[0] < bar else 0
    if pickup and len(lines) > 2 and total - lines[-1] == bar - pickup:
        return lines + [total]
    return lines + [max(total, lines[-1] + bar)]


def bar_spans(song: Song) -> dict[int, tuple[int, int]]:
    """Score bar number → ``(first step, end step)`` of every bar holding music; a pickup is bar 0.

    The last bar ends at the end of the melody (it may be shorter than a full bar).
    """
    total = song.total_steps
    starts = song_bar_starts(song)
    spans = {0: (0, starts[0])} if starts[0] > 0 else {}
    ends = starts[1:] + [max(total, starts[-1])]
    for number, (start, end) in enumerate(zip(starts, ends, strict=True), start=1):
        if start < total:
            spans[number] = (start, end)
    return spans


def bar_of_steps(starts: list[int], total_steps: int) -> list[int]:
    """Index into ``starts`` of the bar holding each step ``0..total_steps`` (−1 before the first:
    a pickup)."""
    result, index = [], -1
    for step in range(total_steps + 1):
        while index + 1 < len(starts) and starts[index + 1] <= step:
            index += 1
        result.append(index)
    return result
