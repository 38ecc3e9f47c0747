"""Choosing the compute device once, at the top of a program."""

from __future__ import annotations

import os

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1") if given, else CUDA when available, else the CPU. Under torchrun,
    CUDA means this process's own GPU (LOCAL_RANK)."""
    if requested:
        return torch.device(requested)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
