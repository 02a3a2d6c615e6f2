"""The training loop: teacher forcing over whole songs, validation metrics, checkpoints, resume, DDP.

Run folder: ``config.toml``, ``metrics.jsonl`` (one line per epoch, rewritten from the history
that ``last.pt`` holds, so a resume never duplicates a line), ``training.png``, ``last.pt`` (every
epoch and on interruption) and ``best.pt`` (lowest validation loss). The folder is reserved
before any work (``tunesmith.rundir``): a second run into it fails at once. A non-finite loss
stops training with an error; non-finite weights are never saved.
Under ``torchrun`` every process trains on its share of the batches (DistributedDataParallel:
at each update the processes' batches have about one length), they share the validation passes,
and rank 0 alone writes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunesmith.checkpoint import Checkpoint
from tunesmith.config import Config, to_toml
from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as form_inputs
from tunesmith.model import MelodyLSTM
from tunesmith.rundir import RunFolder, open_run_folder, reserve_run_folder
from tunesmith.training import data as batching
from tunesmith.training.distributed import Distributed
from tunesmith.training.process import StopRequest, keep_freed_memory, limit_kernel_cache, release_freed_memory
from tunesmith.training.plot import epoch_summary, plot_history
from tunesmith.training.validation import combine_passes, prior_bits, validation_pass, validation_passes

LAST, BEST = "last.pt", "best.pt"


@dataclass
class RunState:
    """Everything besides the weights that a resumed run needs to continue exactly."""

    epoch: int = 0  # completed epochs
    epoch_step: int = 0  # batches already done in the epoch under way (after an interruption)
    partial: list[float] = field(default_factory=lambda: [0.0, 0.0])  # Σ loss·tokens, Σ tokens so far
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    bad_epochs: int = 0  # epochs since the validation loss last improved
    updates: int = 0  # optimizer steps so far (warms up the weight average)
    train_seconds: float = 0.0  # summed over every session of this run


@dataclass
class RunResult:
    """How a run ended: ``reason`` is done | early_stop | time_budget | interrupted; ``model`` is the
    network as training left it (the last weights, not necessarily best.pt's)."""

    run_dir: Path
    reason: str
    state: RunState
    exit_code: int = 0
    model: MelodyLSTM | None = None


def train(config: Config, run_dir: str | Path, dataset: Any = None, resume: bool = False,
          progress: bool = True) -> RunResult:  # fmt: skip
    """Train (or with ``resume`` continue) a MelodyLSTM into ``run_dir``; ``dataset`` defaults to
    ``prepare(config.corpus, config.encoding)``. Raises TunesmithError on unusable input."""
    run_dir = Path(run_dir)
    config.validate()
    dist = Distributed.from_environment(config.train.device)
    folder: RunFolder | None = None
    try:
        if dist.is_main:  # before any work: a file, a foreign folder or a busy run fails here
            folder = open_run_folder(run_dir) if resume else reserve_run_folder(run_dir, staged=False)
        result = _train(config, run_dir, dataset, resume, progress, dist)
    except BaseException:
        if folder is not None and (resume or (run_dir / LAST).exists()):
            folder.release()  # keep a run that saved an epoch: it can be resumed
        elif folder is not None:
            folder.abort()
        raise
    finally:
        dist.close()
    if folder is not None:
        folder.commit()
    return result


def _train(config: Config, run_dir: Path, dataset: Any, resume: bool, progress: bool, dist: Distributed) -> RunResult:
    tc = config.train
    checkpoint = Checkpoint.load(run_dir / LAST) if resume else None
    if dataset is None:
        from tunesmith.corpus import prepare

        dataset = dist.rank_zero_first(lambda: prepare(config.corpus, config.encoding, progress=progress))
    train_examples, val_examples = dataset.split("train"), dataset.split("val")
    if not train_examples or not val_examples:
        raise TunesmithError(f"the corpus {config.corpus.sources!r} has {len(train_examples)} training and "
                             f"{len(val_examples)} validation songs; both must be > 0")  # fmt: skip
    vocab, spq = dataset.vocab, dataset.steps_per_quarter
    modes, meters = batching.condition_vocabularies(train_examples)
    if checkpoint is not None and (checkpoint.vocab != vocab.tokens or checkpoint.meters != meters):
        raise TunesmithError(f"the corpus {config.corpus.sources!r} no longer matches the run in {str(run_dir)!r}")

    _seed(tc.seed)
    keep_memory = tc.keep_memory and dist.device.type == "cpu" and keep_freed_memory()
    if dist.device.type == "cpu":
        limit_kernel_cache()
    torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // dist.world))
    model = MelodyLSTM(config.model, len(vocab), len(modes), len(meters)).to(dist.device)
    optimizer = _optimizer(model.parameters(), tc)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tc.lr_factor, patience=tc.lr_patience)
    # The averaged copy is what validation scores and checkpoints hold (sampling uses it).
    averaged = copy.deepcopy(model).requires_grad_(False) if tc.average else None
    state = RunState()
    if checkpoint is not None:
        state = _restore(checkpoint, model, optimizer, scheduler, averaged)
    shipped = averaged if averaged is not None else model
    net = dist.wrap(model)
    if checkpoint is None:
        torch.manual_seed(tc.seed + dist.rank)  # same initial weights, different dropout masks per rank
    uses_form = bool(config.model.form_inputs)
    songs = batching.tensorize(train_examples, vocab, modes, meters, spq, form=uses_form)
    chunks = batching.chunk(songs, tc.chunk_steps)
    # train.focus_epochs: the last epochs see only the songs of corpus.sources, the style validated on
    own = batching.chunk([t for t, e in zip(songs, train_examples) if not e.extra], tc.chunk_steps) if tc.focus_epochs else chunks
    if not own:
        raise TunesmithError("train.focus_epochs needs training songs from corpus.sources; all of them are from corpus.train_sources")
    loss_fn = nn.CrossEntropyLoss(ignore_index=vocab.pad)
    fixed = {"config": config.to_dict(), "vocab": vocab.tokens, "modes": modes, "meters": meters,
             "steps_per_quarter": spq}  # fmt: skip
    # the training songs' forms, from which generation draws a default form (form-aware models)
    # (with train.focus_epochs, from the songs of corpus.sources: the style the model ends on)
    styled = [e.song for e in train_examples if not (tc.focus_epochs and e.extra)]
    forms = form_inputs.corpus_forms(styled) if uses_form else None
    pickups = form_inputs.corpus_pickups(styled) if uses_form else None  # drawn with them
    # the validation forms' code length under the training forms' prior, for the two-stage figures
    val_prior = prior_bits(train_examples, val_examples) if uses_form and dist.is_main else None

    def payload() -> Checkpoint:
        latest = state.history[-1]["val"] if state.history else {}
        extra = {"training_model": model.state_dict()} if averaged is not None else {}
        extra.update(epoch=state.epoch, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                     rng=_rng_state(), history=state.history, run=_state_dict(state))  # fmt: skip
        if forms is not None:
            extra["forms"], extra["pickups"] = forms, pickups
        return Checkpoint.from_model(shipped, metrics={**latest, "best": state.best}, extra=extra, **fixed)

    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(to_toml(config), encoding="utf-8")
        if checkpoint is not None:  # drop lines of epochs the checkpoint does not hold (a kill mid-write)
            _write_metrics(run_dir, state.history)
    reason = "done"
    with StopRequest() as stop:
        while state.epoch < tc.epochs:
            epoch_start = time.perf_counter()
            epoch_seed = tc.seed * 100_003 + state.epoch  # same on every rank and on resume
            focused = state.epoch >= tc.epochs - tc.focus_epochs
            batches = batching.epoch_batches(own if focused else chunks, tc.batch_size, epoch_seed, dist.rank, dist.world)
            bar = _progress_bar(len(batches), state, tc.epochs, progress and dist.is_main)
            seen_tokens, interrupted = _run_batches(batches, net, model, averaged, optimizer, loss_fn, state, tc,
                                                    dist, stop, bar, epoch_start)  # fmt: skip
            bar.close()
            state.train_seconds += time.perf_counter() - epoch_start
            if interrupted:
                if dist.is_main:
                    payload().save(run_dir / LAST)
                reason = "interrupted"
                break
            upcoming = own if state.epoch + 1 >= tc.epochs - tc.focus_epochs else chunks  # the next epoch's songs
            reason = _end_epoch(state, shipped, optimizer, scheduler, val_examples, fixed, dist, tc, seen_tokens,
                                time.perf_counter() - epoch_start, val_prior, sum(len(c.targets) for c in upcoming))  # fmt: skip
            if keep_memory:
                release_freed_memory()  # what the epoch kept (train.keep_memory), once per epoch
            if dist.is_main:
                _write_epoch(run_dir, state, payload)
                if progress:
                    print(epoch_summary(state.history[-1]), file=sys.stderr, flush=True)
            if reason != "continue":
                break
    reason = "done" if reason == "continue" else reason
    code = 0
    if reason == "interrupted":
        code = 128 + (stop.signal or signal.SIGINT)
        if dist.is_main:
            print(f"interrupted in epoch {state.epoch + 1} after {state.epoch_step} batches; saved "
                  f"{run_dir / LAST}; continue with: tunesmith train --resume {run_dir}", file=sys.stderr)  # fmt: skip
    return RunResult(run_dir, reason, state, code, shipped)


def _optimizer(parameters: Any, tc: Any) -> torch.optim.Optimizer:
    """Adam with ``train.weight_decay`` as an L2 term in the gradient, or with
    ``train.decoupled_decay`` as AdamW's direct shrink of the weights (by lr × weight_decay per step)."""
    return torch.optim.Adam(parameters, lr=tc.lr, betas=(0.9, tc.beta2), weight_decay=tc.weight_decay, decoupled_weight_decay=tc.decoupled_decay)


def _run_batches(batches: list, net: nn.Module, model: MelodyLSTM, averaged: MelodyLSTM | None, optimizer: Any,
                 loss_fn: nn.Module, state: RunState, tc: Any, dist: Distributed, stop: StopRequest, bar: Any,
                 epoch_start: float) -> tuple[int, bool]:  # fmt: skip
    """Train on this epoch's batches from ``state.epoch_step`` on; returns (tokens seen, interrupted)."""
    pad = loss_fn.ignore_index
    seen_tokens = 0
    for index in range(state.epoch_step, len(batches)):
        if dist.any(stop.signal is not None):
            return seen_tokens, True
        inputs, positions, targets, mode, meter = batching.pad_batch(batches[index], pad, dist.device)
        mode, meter = batching.hide_conditions(mode, meter, tc.unknown_share)
        form = batching.hide_form(batching.pad_form(batches[index], dist.device), tc.form_unknown_share)
        logits, _ = net(inputs, positions, mode, meter, form=form)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if dist.any(not bool(torch.isfinite(loss))):
            raise TunesmithError(f"the training loss became {loss.item()} in epoch {state.epoch + 1}, batch "
                                 f"{index + 1}: lower train.lr (now {optimizer.param_groups[0]['lr']:g}) or set "
                                 "train.grad_clip; last.pt keeps the last good epoch")  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        state.updates += 1
        if averaged is not None:
            _update_average(averaged, model, tc.average, state.updates)
        tokens, value = int((targets != pad).sum()), loss.item()
        state.partial[0] += value * tokens
        state.partial[1] += tokens
        seen_tokens += tokens
        state.epoch_step = index + 1
        rate = seen_tokens * dist.world / max(time.perf_counter() - epoch_start, 1e-9)
        bar.set_postfix(loss=f"{value:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
        bar.update(1)
    return seen_tokens, False


@torch.no_grad()
def _update_average(averaged: nn.Module, model: nn.Module, decay: float, updates: int) -> None:
    """Exponential moving average of the weights; the decay ramps up so early steps are not frozen in."""
    decay = min(decay, (1 + updates) / (10 + updates))
    for mean, current in zip(averaged.parameters(), model.parameters()):
        mean.lerp_(current, 1.0 - decay)


def _end_epoch(state: RunState, model: MelodyLSTM, optimizer: Any, scheduler: Any, val_examples: list, fixed: dict,
               dist: Distributed, tc: Any, seen_tokens: int, seconds: float,
               val_prior: float | None = None, next_tokens: int = 0) -> str:  # fmt: skip
    """Validate (:mod:`tunesmith.training.validation`), anneal, record history; returns continue |
    early_stop | time_budget (the next epoch, ``next_tokens`` at the run's rate so far, would end
    past ``train.max_minutes`` of epoch time)."""
    train_loss = state.partial[0] / max(state.partial[1], 1)
    # the validation passes (form given, form hidden) shared among the ranks, which would idle otherwise
    mine = {name: validation_pass(name, model, val_examples, _vocab(fixed), fixed["modes"], fixed["meters"],
                                  fixed["steps_per_quarter"], dist.device)
            for name in validation_passes(model)[dist.rank :: dist.world]}  # fmt: skip
    passes = dist.gather(mine)
    metrics = dist.broadcast(combine_passes(passes, val_prior) if dist.is_main else None)
    train_loss = dist.mean(train_loss)
    if not all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)) or not math.isfinite(train_loss):
        raise TunesmithError(f"validation after epoch {state.epoch + 1} gave non-finite figures (loss "
                             f"{metrics['loss']}): lower train.lr; last.pt keeps the last good epoch")  # fmt: skip
    scheduler.step(metrics["loss"])
    state.epoch += 1
    state.epoch_step, state.partial = 0, [0.0, 0.0]
    improved = not state.best or metrics["loss"] < state.best["loss"]
    if improved:
        state.best, state.bad_epochs = {**metrics, "epoch": state.epoch}, 0
    else:
        state.bad_epochs += 1
    state.history.append({
        "epoch": state.epoch, "train_loss": train_loss, "val": metrics, "lr": optimizer.param_groups[0]["lr"],
        "seconds": round(seconds, 2), "tokens_per_s": round(seen_tokens * dist.world / max(seconds, 1e-9)),
        "improved": improved,
    })  # fmt: skip
    if tc.early_stop and state.bad_epochs >= tc.early_stop:
        return "early_stop"
    return "time_budget" if over_budget(state.history, next_tokens, tc.max_minutes) else "continue"


def over_budget(history: list[dict[str, Any]], next_tokens: int, max_minutes: float) -> bool:
    """Whether an epoch of ``next_tokens`` (every rank's), at the run's rate so far, would end
    past ``max_minutes`` of the epochs' own time (0 = no budget). A focused epoch
    (``train.focus_epochs``) costs its share of the tokens, not the mean epoch's time."""
    if not max_minutes or not history:
        return False
    seconds = sum(entry["seconds"] for entry in history)
    rate = sum(entry["tokens_per_s"] * entry["seconds"] for entry in history) / max(seconds, 1e-9)
    return seconds + next_tokens / max(rate, 1e-9) > max_minutes * 60


def _write_epoch(run_dir: Path, state: RunState, payload: Any) -> None:
    """Checkpoints first, then ``metrics.jsonl`` rewritten from the history they hold: a kill
    between the two leaves a short file that the next epoch (or a resume) writes whole again."""
    data = payload()
    data.save(run_dir / LAST)
    if state.history[-1]["improved"]:
        data.save(run_dir / BEST)
    _write_metrics(run_dir, state.history)
    plot_history(state.history, run_dir / "training.png")


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    path = run_dir / "metrics.jsonl"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(json.dumps(entry) + "\n" for entry in history), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TunesmithError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def _progress_bar(total: int, state: RunState, epochs: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=state.epoch_step, desc=f"epoch {state.epoch + 1}/{epochs}", unit="batch",
                disable=not enabled, leave=False, dynamic_ncols=True)  # fmt: skip


def _vocab(fixed: dict[str, Any]) -> Any:
    from tunesmith.encoding import Vocabulary

    return Vocabulary(fixed["vocab"])


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """RNG states as plain data and tensors (a checkpoint loads with ``weights_only``)."""
    version, internal, gauss = random.getstate()
    state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _state_dict(state: RunState) -> dict[str, Any]:
    return {"epoch_step": state.epoch_step, "partial": state.partial, "best": state.best,
            "bad_epochs": state.bad_epochs, "train_seconds": state.train_seconds, "updates": state.updates}  # fmt: skip


def _restore(checkpoint: Checkpoint, model: MelodyLSTM, optimizer: Any, scheduler: Any,
             averaged: MelodyLSTM | None) -> RunState:  # fmt: skip
    """Load weights (and their average), optimizer, scheduler and RNG state; return the bookkeeping."""
    extra = checkpoint.extra
    try:
        if averaged is not None:
            averaged.load_state_dict(checkpoint.state_dict)
        model.load_state_dict(extra.get("training_model", checkpoint.state_dict))
        optimizer.load_state_dict(extra["optimizer"])
        scheduler.load_state_dict(extra["scheduler"])
        rng = extra.get("rng", {})
        if "python" in rng:
            version, internal, gauss = rng["python"]
            random.setstate((version, tuple(internal), gauss))
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        run = extra.get("run", {})
        return RunState(epoch=int(extra["epoch"]), epoch_step=run.get("epoch_step", 0),
                        partial=list(run.get("partial", [0.0, 0.0])), history=list(extra.get("history", [])),
                        best=run.get("best", {}), bad_epochs=run.get("bad_epochs", 0),
                        train_seconds=run.get("train_seconds", 0.0), updates=run.get("updates", 0))  # fmt: skip
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        what = "it has no resume state (a shipped model?)" if isinstance(exc, KeyError) else type(exc).__name__
        raise TunesmithError(f"the checkpoint cannot be resumed with this configuration: {what}") from None


def resume_config(run_dir: str | Path) -> Config:
    """The Config a run folder's ``last.pt`` was trained with."""
    return Checkpoint.load(Path(run_dir) / LAST).training_config()


def export_checkpoint(source: str | Path, dest: str | Path) -> None:
    """Copy a checkpoint without its optimizer, scheduler and RNG state (a third of the size):
    enough to sample and evaluate, not to resume."""
    Checkpoint.load(source).without_resume_state().save(dest)
