"""The two generation loops: per-step sampling for a batch, and beam search.

Both feed ``<s>`` + primer through the model once, then call ``model.step`` once per time step
with the carried LSTM state, so a step costs the same at bar 1 and at bar 100.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from tunesmith.encoding import Vocabulary
from tunesmith.generate.constraints import apply_mask, structure_mask
from tunesmith.generate.sampling import apply_temperature, choose


# Up to this many rows a step's matrices are so small that a second CPU thread costs more in
# synchronisation than it saves (measured: 20x slower with 2 threads on a busy 2-core machine);
# from 64 rows on, two threads win on an idle machine (56k against 34k steps/s).
SMALL_BATCH = 32


@contextmanager
def cpu_threads(threads: int | None):
    """Run a block with ``threads`` torch CPU threads (None = unchanged), then restore the setting."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _threads_for(rows: int, device: torch.device) -> int | None:
    return 1 if device.type == "cpu" and rows <= SMALL_BATCH else None


def _prime(model, vocab: Vocabulary, primer: list[int], positions: list[int], rows: int, mode: int, meter: int):
    """Run ``<s>`` + primer through the model once for ``rows`` rows.

    Returns the logits for the first free step, the state, the constant inputs (modes, meters,
    every step's position), the last token fed, the pitch-token flags and whether each row
    already has a note (a primer with a pitch).
    """
    device = next(model.parameters()).device
    prefix = torch.tensor([vocab.start] + primer, device=device).expand(rows, -1)
    position_ids = torch.tensor(positions, device=device)
    modes = torch.full((rows,), mode, dtype=torch.long, device=device)
    meters = torch.full((rows,), meter, dtype=torch.long, device=device)
    logits, state = model(prefix, position_ids[: len(primer) + 1].expand(rows, -1), modes, meters)
    is_pitch = torch.zeros(len(vocab), dtype=torch.bool, device=device)
    is_pitch[vocab.pitch_ids] = True
    has_note = torch.full((rows,), bool(is_pitch[primer].any()) if primer else False, device=device)
    return logits[:, -1].float(), state, modes, meters, position_ids, prefix[:, -1].clone(), is_pitch, has_note


@torch.inference_mode()
def sample_batch(model, vocab: Vocabulary, primer: list[int], positions: list[int], mode: int, meter: int,
                 mask: torch.Tensor, num: int, generator: torch.Generator, scheme: str, temperature: float,
                 top_k: int, top_p: float, mixed_p: float) -> list[list[int]]:  # fmt: skip
    """Generate ``num`` melodies together, one token per step, until ``</s>`` or the last step.

    ``positions`` holds the step-within-bar of every step plus one past the end. Returns each
    row's token ids: the primer, then the generated tokens (ending with ``</s>`` if chosen).
    """
    with cpu_threads(_threads_for(num, next(model.parameters()).device)):
        total = len(positions) - 1
        logits, state, modes, meters, position_ids, previous, is_pitch, has_note = _prime(
            model, vocab, primer, positions, num, mode, meter)
        device = logits.device
        finished = torch.zeros(num, dtype=torch.bool, device=device)
        end = torch.full((num,), vocab.end, device=device)
        chosen_steps = []
        # once every row has a note, the rules depend only on whether the step starts a bar
        steady = {at_bar: structure_mask(vocab, end, torch.ones_like(finished), at_bar) & mask for at_bar in (False, True)}
        settled = False
        for step in range(len(primer), total):
            settled = settled or bool(has_note.all())
            at_bar = positions[step] == 0
            allowed = steady[at_bar] if settled else structure_mask(vocab, previous, has_note, at_bar) & mask
            chosen = choose(apply_mask(logits, allowed), scheme, temperature, top_k, top_p, mixed_p, generator)
            chosen = torch.where(finished, end, chosen)  # a finished melody only repeats its end
            chosen_steps.append(chosen)
            finished |= chosen == vocab.end
            if step + 1 == total or bool(finished.all()):
                break
            has_note |= is_pitch[chosen]
            logits, state = model.step(chosen, position_ids[step + 1].expand(num), modes, meters, state)
            logits, previous = logits.float(), chosen
        generated = torch.stack(chosen_steps, dim=1).tolist()
        return [primer + _until_end(row, vocab.end) for row in generated]


def _until_end(row: list[int], end: int) -> list[int]:
    return row[: row.index(end) + 1] if end in row else row


@torch.inference_mode()
def beam_search(model, vocab: Vocabulary, primer: list[int], positions: list[int], mode: int, meter: int,
                mask: torch.Tensor, num: int, generator: torch.Generator, beam_size: int,
                temperature: float) -> list[list[int]]:  # fmt: skip
    """Magenta-style beam search: each beam branches into ``beam_size`` sampled continuations
    (drawn without replacement at ``temperature``), and the ``beam_size`` most likely of all
    branches survive, ranked by mean log-probability per step (so ending early is no bonus).

    Runs ``num`` independent searches as one batch of ``num * beam_size`` rows; returns the best
    beam of each, in the same form as :func:`sample_batch`.
    """
    with cpu_threads(_threads_for(num * beam_size, next(model.parameters()).device)):
        total, width = len(positions) - 1, beam_size
        rows = num * width
        logits, state, modes, meters, position_ids, previous, is_pitch, has_note = _prime(
            model, vocab, primer, positions, rows, mode, meter)
        device = logits.device
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        # Only the first beam of each search is live at the start, so the beams do not begin as copies.
        score = torch.full((num, width), float("-inf"), device=device)
        score[:, 0] = 0.0
        score = score.view(-1)
        length = torch.zeros(rows, device=device)
        history = torch.empty(rows, 0, dtype=torch.long, device=device)
        only_end = torch.full((len(vocab),), float("-inf"), device=device)
        only_end[vocab.end] = 0.0
        for step in range(len(primer), total):
            allowed = structure_mask(vocab, previous, has_note, positions[step] == 0) & mask
            log_probs = torch.log_softmax(apply_mask(apply_temperature(logits, temperature), allowed), dim=-1)
            log_probs = torch.where(finished[:, None], only_end, log_probs)  # finished beams stay as they are
            uniform = torch.rand(log_probs.shape, generator=generator, device=device).clamp_(1e-20, 1.0)
            branches = torch.topk(log_probs - torch.log(-torch.log(uniform)), width, dim=-1).indices  # Gumbel top-k
            branch_score = score[:, None] + log_probs.gather(-1, branches)
            branch_length = length[:, None] + (~finished)[:, None].float()
            ranking = (branch_score / branch_length.clamp(min=1.0)).view(num, width * width)
            best = torch.topk(ranking, width, dim=-1).indices
            parent = (torch.arange(num, device=device)[:, None] * width + best // width).view(-1)
            chosen = branches[parent, (best % width).view(-1)]
            score = branch_score[parent, (best % width).view(-1)]
            length, finished, has_note = branch_length[parent, 0], finished[parent], has_note[parent]
            history = torch.cat([history[parent], chosen[:, None]], dim=1)
            state = model.reorder_state(state, parent)
            finished = finished | (chosen == vocab.end)
            if step + 1 == total or bool(finished.all()):
                break
            has_note = has_note | is_pitch[chosen]
            logits, state = model.step(chosen, position_ids[step + 1].expand(rows), modes, meters, state)
            logits, previous = logits.float(), chosen
        best_rows = history.view(num, width, -1)[:, 0].tolist()  # topk keeps beams sorted, best first
        return [primer + _until_end(row, vocab.end) for row in best_rows]

