"""Originality: what a melody shares with the training corpus, for evaluation and for generation.

Notes are compared as (interval, length), so a phrase copied in another key counts as copied.
``OriginalityIndex`` finds the longest shared stretch (and the training tune it comes from);
``entry`` ships the index inside a checkpoint; ``tunesmith.generate.copyguard`` uses it during
decoding to forbid any token that would make a copy longer than ``--max-copy`` notes.
"""

from tunesmith.originality.automaton import FIRST, REST, SuffixAutomaton, note_codes, note_symbols, symbol_code
from tunesmith.originality.entry import (
    DEFAULT_PERCENTILE,
    build_entry,
    entry_for_checkpoint,
    entry_of,
    held_out_statistic,
    index_from_entry,
    with_entry,
)
from tunesmith.originality.index import Match, OriginalityIndex, bar_number

__all__ = [
    "DEFAULT_PERCENTILE", "FIRST", "REST", "Match", "OriginalityIndex", "SuffixAutomaton", "bar_number",
    "build_entry", "entry_for_checkpoint", "entry_of", "held_out_statistic", "index_from_entry",
    "note_codes", "note_symbols", "symbol_code", "with_entry",
]  # fmt: skip
