"""Phrases recovered beside music21's parse (music21 drops them), and repeats written out.

Each recovery returns the music21 offsets (quarters, in the part's flat timeline) where
phrases start, or None when the source has no phrase information or it cannot be aligned
with music21's notes — then the reader falls back to the rule in ``tunesmith.form``.

* kern: the ``{`` marks of the (single) ``**kern`` spine, aligned to music21's notes by
  order (one data token with a duration = one note, rest or chord; grace notes skipped).
* Essen ABC: one phrase per line of the tune body, aligned the same way by counting the
  notes music21's own ABC tokenizer finds on each line. Only Essen tunes (an ``N:`` field
  with an Essen signature such as ``E0001`` or ``L0031A``) are read this way; other ABC puts
  line breaks where the page ends; there, ``P:`` fields in the body (parts A, B…) start
  phrases when the tune has no repeats.
* Repeats: a tune with repeat bars is written out with music21's ``expandRepeats`` (an end
  repeat without a start repeat goes back to the previous section, as players read it) and
  each pass of each section (between repeat bars and double bars) becomes a phrase.
"""

from __future__ import annotations

import re

_ESSEN_SIGNATURE = re.compile(r"^N:\s*[A-Z]\d{4}[A-Z]?\s*$", re.MULTILINE)
_FIELD = re.compile(r"^[A-Za-z]:")
_PART = re.compile(r"^P:", re.MULTILINE)
_KERN_DURATION = re.compile(r"\d")


def _aligned(elements, counts_or_marks: list[bool]) -> list[float] | None:
    """Offsets of the elements flagged True, when the flags line up one-to-one with them."""
    if len(elements) != len(counts_or_marks) or not any(counts_or_marks):
        return None
    return [float(e.offset) for e, flag in zip(elements, counts_or_marks) if flag]


def kern_phrase_offsets(text: str, elements) -> list[float] | None:
    """Offsets where ``{`` phrases start in a kern file's text; ``elements`` are music21's
    non-grace notes, rests and chords in order."""
    flags: list[bool] = []
    column = None
    for line in text.splitlines():
        if not line or line.startswith("!"):
            continue
        cells = line.split("\t")
        if line.startswith("**"):
            kern = [i for i, c in enumerate(cells) if c == "**kern"]
            if len(kern) != 1:
                return None
            column = kern[0]
            continue
        if column is None or line.startswith("="):
            continue
        if line.startswith("*"):
            if any(c in ("*^", "*v", "*x", "*+") for c in cells):
                return None  # spine splits: alignment by order is no longer safe
            continue
        token = cells[column] if column < len(cells) else "."
        if token == "." or "q" in token.lower() or not _KERN_DURATION.search(token):
            continue
        flags.append("{" in token)
    return _aligned(elements, flags)


def is_essen_abc(text: str) -> bool:
    """Whether an ABC tune carries an Essen catalogue signature (its lines are phrases)."""
    return bool(_ESSEN_SIGNATURE.search(text))


def has_parts(text: str) -> bool:
    """Whether an ABC tune names parts (``P:`` fields) inside its body."""
    body = text.split("\nK:", 1)[-1]
    return bool(_PART.search(body))


def abc_line_offsets(text: str, elements, by: str = "lines") -> list[float] | None:
    """Offsets where the lines (``by="lines"``) or the ``P:`` parts (``by="parts"``) of an
    ABC tune body start."""
    from music21 import abcFormat

    flags: list[bool] = []
    in_body, pending, new_part = False, "", True

    def add(line: str) -> None:
        nonlocal new_part
        handler = abcFormat.ABCHandler()
        handler.tokenize(line)
        count, grace = 0, False
        for token in handler.tokens:
            if isinstance(token, abcFormat.ABCGraceStart):
                grace = True
            elif isinstance(token, abcFormat.ABCGraceStop):
                grace = False
            elif isinstance(token, abcFormat.ABCNote) and not grace:
                count += 1
        if count:
            flags.extend([by == "lines" or new_part] + [False] * (count - 1))
            new_part = False

    for raw in text.splitlines():
        line = raw.split("%", 1)[0].rstrip()
        if not in_body:
            in_body = line.startswith("K:")
        elif line.startswith("P:"):
            add(pending)  # a part starts here, even inside a continued line
            pending, new_part = "", True
        elif line.strip() and not _FIELD.match(line):
            if line.endswith("\\"):  # continued on the next line: one line of music
                pending += line[:-1] + " "
            else:
                add(pending + line)
                pending = ""
    add(pending)
    return _aligned(elements, flags)


def has_repeats(part) -> bool:
    """Whether a part has repeat bar lines."""
    from music21 import bar, stream

    for measure in part.getElementsByClass(stream.Measure):
        if isinstance(measure.leftBarline, bar.Repeat) or isinstance(measure.rightBarline, bar.Repeat):
            return True
    return False


def expand_repeats(part):
    """``(expanded part, section-start offsets)`` of a part with repeats; raises if music21 cannot."""
    from music21 import bar, spanner, stream

    measures = list(part.getElementsByClass(stream.Measure))
    later_endings = set()
    for bracket in part.spannerBundle.getByClass(spanner.RepeatBracket):
        if str(bracket.number).strip() not in ("1", "None", ""):
            later_endings.update(id(m) for m in bracket.getSpannedElements())
    starts, opened, section = {0}, False, 0
    for i, measure in enumerate(measures):
        if isinstance(measure.leftBarline, bar.Repeat) and measure.leftBarline.direction == "start":
            opened, section = True, i
            starts.add(i)
        right = measure.rightBarline
        if isinstance(right, bar.Repeat) and right.direction == "end":
            if not opened and section > 0:  # ":|" alone repeats from the previous section
                measures[section].leftBarline = bar.Repeat(direction="start")
                starts.add(section)
            opened, section = False, i + 1
        elif right is not None and right.type in ("double", "final", "light-light", "light-heavy"):
            opened, section = False, i + 1
        if section == i + 1 and i + 1 < len(measures) and id(measures[i + 1]) not in later_endings:
            starts.add(i + 1)
    keys = {(m.number, m.numberSuffix) for i, m in enumerate(measures) if i in starts}
    expanded = part.expandRepeats()
    offsets, previous = [], None
    for measure in expanded.getElementsByClass(stream.Measure):
        jump_back = previous is not None and measure.number <= previous
        if jump_back or (measure.number, measure.numberSuffix) in keys:
            offsets.append(float(measure.offset))
        previous = measure.number
    return expanded, offsets
