"""Run a function in several CPU processes joined by a gloo process group (DDP on localhost)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _entry(
    rank: int, function: Callable[..., Any], world_size: int, port: int, args: tuple
) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # the test machine has few cores; the ranks share them
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        function(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def run_gloo(function: Callable[..., Any], *args: Any, world_size: int = 2) -> None:
    """Call ``function(rank, world_size, *args)`` in ``world_size`` spawned processes.

    ``function`` must be importable (defined at module level); it reports back through files
    (``args`` usually holds a temporary folder). An exception in any rank fails the call.
    """
    import torch.multiprocessing as mp

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    mp.spawn(_entry, args=(function, world_size, free_port(), args), nprocs=world_size, join=True)
