"""Training checkpoints every n optimizer steps, and what a resumed run needs to continue exactly.

:class:`StepCheckpoint` writes ``step-000020.ckpt`` files (Lightning's full checkpoint: weights,
optimizer, LR scheduler, loop progress and global step) and keeps the most recent ones. On top of
what Lightning saves it keeps the random states and the position in the training data, so a run
resumed with ``trainer.fit(..., ckpt_path=...)`` draws the same dropout masks and sees the same
batches as one that never stopped.

Exactness has one gap: after a checkpoint on an epoch's last step the next epoch's data is right,
but the random numbers drawn between epochs (the end-of-epoch validation, a new DataLoader
iterator) are not replayed, so dropout masks differ from an uninterrupted run's.

A checkpoint is written to a ``.partial`` file and renamed, so a process killed while saving leaves
the previous checkpoint whole; a step whose weights are NaN or infinite writes nothing, so the last
good checkpoint stays.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint

log = logging.getLogger("lossbench")

CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.ckpt$")
CHECKPOINT_DIR_TAG = (
    "checkpoint_dir"  # the MLflow tag that tells a resume where a run's checkpoints are
)


def checkpoint_path(folder: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` goes: ``<folder>/step-000020.ckpt``."""
    return folder / f"step-{step:06d}.ckpt"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """The whole checkpoints in ``folder`` as ``(step, path)``, oldest first (``.partial`` files left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def last_checkpoint(folder: str | Path) -> tuple[int, Path] | None:
    """The most recent checkpoint in ``folder`` as ``(step, path)``, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def weights_are_finite(module: torch.nn.Module) -> bool:
    """True when no parameter holds a NaN or an infinity."""
    return all(bool(torch.isfinite(p.detach()).all()) for p in module.parameters())


def random_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's random generators (CPU and CUDA).

    Only tensors, numbers, strings and tuples, so ``torch.load(weights_only=True)`` reads them.
    """
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)
    name, keys, position, has_gauss, gauss = numpy_state
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    """Restore what :func:`random_states` returned."""
    random.setstate(states["python"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def worker_skips(batches: int, batch_size: int, num_workers: int) -> list[int]:
    """Training samples each DataLoader worker produced for the first ``batches`` batches of an epoch.

    A DataLoader over an iterable dataset takes batch ``i`` from worker ``i % num_workers`` (one
    stream when ``num_workers`` is 0), each batch ``batch_size`` consecutive samples of that worker's
    share.
    """
    workers = max(num_workers, 1)
    return [len(range(w, batches, workers)) * batch_size for w in range(workers)]


def check_checkpoint_settings(settings: Mapping[str, Any] | None) -> None:
    """Fail, naming the setting and its valid values, on a bad ``checkpoint`` config node."""
    settings = settings or {}
    every, keep = settings.get("every_n_steps"), settings.get("keep", 1)
    if every is not None and (not isinstance(every, int) or every < 1):
        raise ValueError(
            f"checkpoint.every_n_steps={every!r}; give a positive number of optimizer steps, "
            "or null for no checkpoints"
        )
    if not isinstance(keep, int) or keep == 0 or keep < -1:
        raise ValueError(f"checkpoint.keep={keep!r}; give 1 or more, or -1 to keep all")


def discard_when_finished(
    callbacks: list[StepCheckpoint], settings: Mapping[str, Any] | None
) -> None:
    """A run that ends FINISHED cannot be resumed: drop its checkpoints unless ``checkpoint.keep_finished``."""
    if not (settings or {}).get("keep_finished", False):
        for callback in callbacks:
            callback.discard()


class StepCheckpoint(Checkpoint):
    """Save a checkpoint every ``every_n_steps`` optimizer steps into ``folder``; keep the last ``keep``.

    Lightning runs checkpoint callbacks after all the others, so :class:`FiniteLossGuard` stops a
    NaN step before it could be saved. The checkpoint also holds the random states and the data
    position (epoch, batches done); on resume the data position is handed to the training dataset
    if it can skip ahead (``TupleDataset.skip_next_pass``), else the epoch restarts (Lightning's own
    behaviour for a plain DataLoader) with a warning.

    Args:
        folder: where the ``step-000020.ckpt`` files go (created at the first save).
        every_n_steps: save after every n optimizer steps (``trainer.global_step % n == 0``); None
            saves nothing but still restores a resumed run's random states and data position.
        keep: how many of the most recent checkpoints to keep; -1 keeps all.
    """

    def __init__(self, folder: str | Path, every_n_steps: int | None, keep: int = 1) -> None:
        check_checkpoint_settings({"every_n_steps": every_n_steps, "keep": keep})
        self.folder = Path(folder)
        self.every_n_steps = every_n_steps
        self.keep = keep
        self.last_saved_step: int | None = None
        self.seconds_saving = 0.0  # wall-clock time spent writing checkpoints
        self._position: dict[str, int] = {"epoch": 0, "batches": 0}
        self._epoch_batches = 0  # batches trained in this pass over the data (Lightning's batch_idx
        # goes on counting from the checkpoint's after a resume at an epoch's end)
        self._pending_random: dict[str, Any] | None = None
        self._trainer: L.Trainer | None = None

    # ---- saving ---------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, module: Any) -> None:
        self._epoch_batches = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._epoch_batches += 1
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or step == self.last_saved_step:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._position = {"epoch": trainer.current_epoch + 1, "batches": 0}
        else:
            self._position = {"epoch": trainer.current_epoch, "batches": self._epoch_batches}
        self.save(trainer, module, step)

    def save(self, trainer: L.Trainer, module: torch.nn.Module, step: int) -> Path | None:
        """Write the checkpoint of ``step`` (unless a weight is not finite) and drop the oldest ones."""
        if not weights_are_finite(module):
            log.warning(
                "step %d: a weight is NaN or infinite; no checkpoint written (the last good one stays)",
                step,
            )
            return None
        start = time.perf_counter()
        path = checkpoint_path(self.folder, step)
        partial = path.with_name(path.name + ".partial")
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(partial, weights_only=False)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(partial, path)
            if self.keep > 0:
                for _, old in list_checkpoints(self.folder)[: -self.keep]:
                    old.unlink(missing_ok=True)
        self.last_saved_step = step
        self.seconds_saving += time.perf_counter() - start
        return path

    def discard(self) -> None:
        """Delete this run's checkpoints (and their folder when nothing else is in it)."""
        for _, path in list_checkpoints(self.folder):
            path.unlink(missing_ok=True)
        for partial in self.folder.glob("step-*.ckpt.partial"):  # a save cut short by a kill
            partial.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()

    def state_dict(self) -> dict[str, Any]:
        return {"random_states": random_states(), "data_position": dict(self._position)}

    # ---- resuming -------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        self._trainer = trainer

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Called by Lightning when it restores a checkpoint, before the training data is read."""
        self._pending_random = state_dict.get("random_states")
        position = state_dict.get("data_position")
        if position is not None and self._trainer is not None:
            self._position = dict(position)
            self._epoch_batches = int(position["batches"])
            self._restore_data_position(self._trainer, position["epoch"], position["batches"])

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.last_saved_step = trainer.global_step  # the step resumed from is saved already

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        # restored right before the first resumed step: the data loading before it drew numbers too
        if self._pending_random is not None:
            set_random_states(self._pending_random)
            self._pending_random = None

    @staticmethod
    def _restore_data_position(trainer: L.Trainer, epoch: int, batches: int) -> None:
        """Point the training dataset at ``epoch``, past its first ``batches`` batches."""
        data = getattr(trainer, "datamodule", None)
        dataset = getattr(data, "train_dataset", None)
        if dataset is not None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        if batches == 0:
            return
        if data is None or dataset is None or not hasattr(dataset, "skip_next_pass"):
            log.warning(
                "resuming at batch %d of epoch %d: %s cannot skip to it, so this epoch's data "
                "starts again from its beginning",
                batches,
                epoch,
                type(dataset).__name__,
            )
            return
        skips = worker_skips(batches, int(data.train_batch_size), int(data.num_workers))
        dataset.skip_next_pass(skips)


def checkpoint_callbacks(
    settings: Mapping[str, Any] | None, output: Path, tracked: Any, resume_dir: Path | None = None
) -> list[StepCheckpoint]:
    """The run's :class:`StepCheckpoint` from the ``checkpoint`` config node, or none when it saves nothing.

    A new run saves to ``<checkpoint.dir or output/checkpoints>/<run id>`` and records that folder as
    its MLflow tag ``checkpoint_dir``; a resumed run (``resume_dir``) goes on saving where it did.
    """
    settings = settings or {}
    every = settings.get("every_n_steps")
    keep = int(settings.get("keep", 1))
    if resume_dir is not None:
        return [StepCheckpoint(resume_dir, every, keep)]
    if every is None:
        return []
    folder = (Path(settings.get("dir") or output / "checkpoints") / tracked.run_id).resolve()
    tracked.set_tags({CHECKPOINT_DIR_TAG: str(folder)})
    return [StepCheckpoint(folder, int(every), keep)]
