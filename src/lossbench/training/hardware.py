"""Defaults that depend on the machine: DataLoader workers and encoding batch sizes.

A ``null`` in the config (``data.num_workers``, ``data.encode_workers``,
``data.inference_batch_size``) means "pick for this machine":

* On the CPU the model is the bottleneck: tokenizing a batch costs a few % of encoding it, so
  encoding tokenizes in the main process (0 workers: no worker start-up per pass) and training uses
  one worker, which tokenizes the next batch while the two cores run the model.
* On a GPU one tokenizer process feeds a small model such as MiniLM-L6 for a fraction of its speed
  (``bench/RESULTS.md``). Training uses up to 12 workers (one DataLoader for the whole fit),
  leaving two cores for the main process. Encoding uses none: a thread tokenizes ahead on every
  core (no worker start-up per pass; as fast as 12 workers in ``bench/encode.py``) and fills the
  module's token cache, so the later passes over the same corpus (validations, the final index)
  skip the tokenizer; batches are 512 texts.
"""

from __future__ import annotations

import os

import torch

MAX_GPU_WORKERS = 12


def available_cpus() -> int:
    """CPUs this process may run on (the scheduler's affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def on_gpu(device: torch.device | str | None = None) -> bool:
    """Whether work runs on a CUDA device (``device`` given) or would (``None``: one is present)."""
    if device is None:
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def gpu_workers() -> int:
    return max(1, min(MAX_GPU_WORKERS, available_cpus() - 2))


def training_workers(setting: int | None, device: torch.device | str | None = None) -> int:
    """DataLoader workers for training batches: ``setting``, or 1 on the CPU / up to 12 on a GPU."""
    if setting is not None:
        return int(setting)
    return gpu_workers() if on_gpu(device) else 1


def encoding_workers(setting: int | None, device: torch.device | str | None = None) -> int:
    """DataLoader worker processes for encoding: ``setting``, or 0 (the main process on the CPU, a
    thread tokenizing ahead on a GPU; either fills the module's token cache)."""
    if setting is not None:
        return int(setting)
    return 0


def inference_batch_size(setting: int | None, device: torch.device | str | None = None) -> int:
    """Texts per encoding batch: ``setting``, or 128 on the CPU / 512 on a GPU."""
    if setting is not None:
        return int(setting)
    return 512 if on_gpu(device) else 128


def inference_device(accelerator: str | None = "auto") -> torch.device:
    """Where the pipeline encodes outside ``Trainer.fit`` (Lightning moves the model back to the CPU
    when fit ends): the GPU when the trainer may use one and one is present, else the CPU."""
    wants_gpu = (accelerator or "auto") in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")
