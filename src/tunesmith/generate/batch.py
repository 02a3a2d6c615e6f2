"""Several generation requests decoded as one pass, each still reproducible from its own seed.

A server answering many clients at once would otherwise decode each request alone, one after
the other (Python holds the GIL, so threads do not overlap). Requests that differ only in their
seed become one plan whose rows advance together; each row draws from its own random stream
(:class:`~tunesmith.generate.sampling.RowRandom`) seeded with its request's seed, and a one-row
stream seeded with ``s`` draws exactly what :meth:`Generator.generate`'s single stream seeded with
``s`` draws. So a request gives the melody it gives alone, whatever it is batched with.

Only one-melody requests with a per-step scheme are batched; a request for several melodies
(whose rows share one stream) or for beam search runs alone, through :meth:`Generator.generate`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.generate.config import GenerationConfig
from tunesmith.generate.melody import Melody
from tunesmith.generate.plan import Plan

MAX_BATCH_ROWS = 32  # rows of one pass: decode.SMALL_BATCH, the most that still run on one CPU thread (faster)


def batch_key(config: GenerationConfig) -> tuple | None:
    """What must match for two requests to share a pass (every setting but the seed); None when
    ``config`` runs alone (several melodies, or beam search)."""
    if config.num != 1 or config.scheme == "beam":
        return None
    return tuple(sorted((k, repr(v)) for k, v in asdict(config).items() if k != "seed"))


def generate_batch(generator, configs: list[GenerationConfig], max_rows: int = MAX_BATCH_ROWS,
                   return_errors: bool = False) -> list[Any]:  # fmt: skip
    """The melodies of each of ``configs``, in order: ``result[i]`` equals ``generator.generate(configs[i])``.

    Requests with equal :func:`batch_key` are decoded together, at most ``max_rows`` at a time.
    A bad request raises its TunesmithError, or with ``return_errors`` takes that error's place in
    the result (so one bad request does not fail the others).
    """
    results: list[Any] = [None] * len(configs)
    groups: dict[tuple, list[tuple[int, GenerationConfig, Plan]]] = {}
    for index, config in enumerate(configs):
        try:
            key = batch_key(config)
            if key is None:
                results[index] = generator.generate(config)
            else:
                plan = generator.plan(config)
                groups.setdefault((key, form_signature(plan)), []).append((index, config, plan))
        except TunesmithError as exc:
            if not return_errors:
                raise
            results[index] = exc
    for members in groups.values():
        for first in range(0, len(members), max_rows):
            chunk = members[first : first + max_rows]
            try:
                melodies = _decode_together(generator, [(config, plan) for _, config, plan in chunk])
            except TunesmithError as exc:
                if not return_errors:
                    raise
                melodies = [exc] * len(chunk)
            for (index, _, _), melody in zip(chunk, melodies):
                results[index] = melody if isinstance(melody, TunesmithError) else [melody]
    return results


def form_signature(plan: Plan) -> tuple | None:
    """What a plan's form fixes (its phrases, their starts, the length): requests share a pass
    only with requests whose (drawn or asked-for) form is the same."""
    if plan.form is None:
        return None
    form = plan.form.form
    return (tuple(repr(p) for p in form.phrases), tuple(form.starts), form.total_steps, form.source)


def _decode_together(generator, requests: list[tuple[GenerationConfig, Plan]]) -> list[Melody]:
    """One decoding pass over requests whose plans differ only in their seed: one row each."""
    from tunesmith.generate.decode import StepChooser, decode
    from tunesmith.generate.sampling import RowRandom

    config, plan = requests[0]
    chooser = StepChooser(config.scheme, config.temperature, config.top_k, config.top_p, config.mixed_p)
    streams = RowRandom([p.seed for _, p in requests], generator.device)
    decoded = decode(generator.model, replace(plan, num=len(requests)), chooser, streams)
    melodies = [generator._melody(ids, 0, c, p) for ids, (c, p) in zip(decoded.ids, requests)]
    if plan.form is not None:  # as generate does: a melody that misses its form is composed again
        from tunesmith.form import compliance

        for i, (melody, (c, p)) in enumerate(zip(melodies, requests)):
            if compliance(melody.song, p.form.form.phrases).ok:
                melody.params["form_honoured"] = True
            else:  # alone, with generate's retries, so the answer is what the request gives alone
                melodies[i] = generator.generate(c)[0]
    if config.chords:
        from tunesmith.harmony import harmonize_with_shipped

        for melody in (m for m in melodies if not m.song.chords):  # generate() harmonised its own
            melody.song.chords = harmonize_with_shipped(melody.song, config.chord_span)
    return melodies
