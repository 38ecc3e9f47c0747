"""Data-parallel training over processes: which rank this process is, its share of every batch, and the
process group (gloo on the CPU, NCCL on CUDA) that torchrun's environment describes.

    torchrun --standalone --nproc-per-node=2 src/stages/train.py ...   # or train.processes: 2 in params.yaml

Every rank draws the same global batch (one seed, one generator), augments and mixes it whole, then trains on
its own contiguous slice of it; DistributedDataParallel averages the gradients, so a step sees the same clips,
masks and mixup partners as one process with the same global batch. BatchNorm normalises over each rank's
slice (torch's SyncBatchNorm needs a GPU); its running statistics are rank 0's, copied to every rank before
each validation, so that every rank scores, selects and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

from ser.parallel import available_cores

TIMEOUT = datetime.timedelta(minutes=10)  # a rank that waits this long for the others gives up with an error


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes: rank `rank` of `world_size` (0 of 1: alone)."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """The rank that prints and writes the outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, batch_size: int) -> slice:
        """This rank's slice of a global batch of `batch_size` clips (a multiple of world_size)."""
        if batch_size % self.world_size:
            raise ValueError(f"a batch of {batch_size} clips does not split evenly over {self.world_size} processes")
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


ALONE = Ranks()


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Ranks]:
    """The Ranks of this process, inside the process group torchrun's environment (RANK, WORLD_SIZE, MASTER_*)
    describes: gloo on the CPU, NCCL on CUDA. Outside torchrun, or with one process, no group: ALONE. On the
    CPU each rank gets an equal share of the cores as torch threads."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield ALONE
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # this rank's GPU (LOCAL_RANK, ser.device.pick_device) for every CUDA call
    dist.init_process_group(backend, timeout=TIMEOUT, device_id=device if device.type == "cuda" else None)
    if device.type == "cpu":
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, available_cores() // local_size))
    try:
        yield Ranks(rank=dist.get_rank(), world_size=dist.get_world_size())
    finally:
        dist.destroy_process_group()


def copy_buffers_from_main(model: torch.nn.Module) -> None:
    """Make every rank's buffers (BatchNorm running statistics) rank 0's, in place."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def sum_over_ranks(values: Sequence[float], device: torch.device) -> list[float]:
    """Each value summed over the ranks (float64, through `device`: NCCL reduces CUDA tensors only), in order."""
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state (every parameter and buffer, by name): equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def same_weights_on_every_rank(model: torch.nn.Module, ranks: Ranks) -> str:
    """The digest of `model`'s weights, after checking that every rank holds exactly the same (RuntimeError
    naming the ranks that differ, if not)."""
    mine = weights_digest(model)
    if not ranks.distributed:
        return mine
    digests: list[str] = [""] * ranks.world_size
    dist.all_gather_object(digests, mine)
    differing = [rank for rank, digest in enumerate(digests) if digest != digests[0]]
    if differing:
        raise RuntimeError(f"ranks {differing} ended training with weights other than rank 0's")
    return mine


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now: the rendezvous of ranks started without torchrun."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_environment(rank: int, world_size: int, port: int) -> dict[str, str]:
    """The variables torchrun sets for rank `rank` of `world_size` on one machine, for ranks started another way
    (torch.multiprocessing in the tests and the benchmark), so that `process_group` finds them."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def relaunch(processes: int, script: str, argv: Sequence[str]) -> int:
    """Run `script argv` as `processes` processes under torchrun (one machine) and return its exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, available_cores() // processes))  # torchrun's: 1
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    return subprocess.run([*command, script, *argv], check=False, env=env).returncode
