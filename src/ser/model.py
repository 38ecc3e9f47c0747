"""The emotion classifier: two 2-D CNN branches and a Transformer encoder over a log-mel spectrogram.

    x (B, n_mels, T) in dB
      -> BatchNorm over mel bands (raw dB in, about zero mean and unit variance out)
      -> square branch:   stride-2x2 stem [+ 2x2 max-pool], stages of 3x3 convolutions + 2x2 max-pool -> (B, C_sq)
      -> wide branch:     stride-2x4 stem [+ 2x4 max-pool], stages of one tall (9x3) or wide (3x9)
                          convolution + 2x4 max-pool (time shrinks faster than frequency) -> (B, C_wd)
      -> temporal branch: patches of `patch` frames -> tokens, Transformer encoder, mean              -> (B, d_model)
      -> concatenate -> dense layers with dropout -> logits (B, n_classes)

The two CNN branches differ in what they see: the square branch builds local time-frequency patterns
(harmonics, onsets) through many small layers; the wide branch covers a long stretch of time and a broad
band of frequencies in few layers (intonation, rhythm, spectral envelope). The Transformer sees the clip
as a sequence of short patches (64 ms for patch=4) and can relate any two of them.

Cost is kept low for CPU training: the only full-resolution convolutions are the two 1-channel strided
stems, pooled at once with `stem_pool` (at that resolution BatchNorm, ReLU and pooling cost more than any
stage's arithmetic); channel-rich layers run on small pooled maps, stored channels-last (faster oneDNN
kernels); the Transformer runs on a sequence `patch` times shorter than the frames; the dense head does one
multiply-add per parameter per clip, the cheapest place for parameters. Dropout sits in the head only by
default: drawing random masks for large activations costs more on CPU than the layers around them.

Presets live in one table, PRESETS; `Classifier(ModelConfig.from_preset(size, n_mels, n_frames, n_classes))`
builds one. A ModelConfig is plain data: `dataclasses.asdict(config)`, saved with the weights, rebuilds the
model with `Classifier(ModelConfig(**saved))` (lists read back from JSON/YAML are turned into tuples again).

An Ensemble is what a bundle holds and prediction runs: one or more Classifiers of one config (trained from
successive seeds, `train.members`), predicting the mean of their probabilities.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import flop_counter


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    n_mels: int  # mel bands of the input spectrogram
    n_frames: int  # frames the model is built for (the clip's); fewer also work
    n_classes: int  # emotions; one logit each
    stem_channels: int  # channels of each CNN branch's strided stem, the only full-resolution conv
    square_channels: tuple[int, ...]  # square branch: channels per stage
    square_depth: int  # 3x3 convolutions per square stage (each stage ends in a 2x2 max-pool)
    wide_channels: tuple[int, ...]  # wide branch: channels per stage (one conv + pool each)
    wide_kernels: tuple[tuple[int, int], ...]  # (freq, time) kernels of the wide branch, cycled from the stem on
    wide_pool: tuple[int, int]  # (freq, time) stem stride and pool of the wide branch
    stem_pool: bool  # max-pool right after each stem, so no stage runs at the stems' resolution
    patch: int  # frames per Transformer token
    d_model: int  # Transformer width
    n_heads: int  # attention heads; must divide d_model
    n_layers: int  # Transformer blocks
    ff_mult: int  # feed-forward hidden width = ff_mult * d_model
    attn_dropout: float  # dropout on the Transformer's residual branches
    head_hidden: tuple[int, ...]  # widths of the dense layers after the concatenated branch vectors
    dropout: float  # dropout before every dense layer of the head

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a config read back from JSON has lists where tuples were saved
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, _to_tuple(value))
        if self.d_model % self.n_heads or self.d_model % 2:  # even: half sine, half cosine positions
            raise ValueError(f"d_model={self.d_model} must be even and a multiple of n_heads={self.n_heads}")
        if self.n_frames < self.patch:
            raise ValueError(f"n_frames={self.n_frames} is shorter than one patch of {self.patch} frames")

    @classmethod
    def from_preset(cls, size: str, n_mels: int, n_frames: int, n_classes: int) -> ModelConfig:
        """The preset `size` (a key of PRESETS) for inputs of n_mels x n_frames and n_classes outputs."""
        if (problem := preset_problem(size)) is not None:
            raise ValueError(f"model.size: {problem}")
        return cls(n_mels=n_mels, n_frames=n_frames, n_classes=n_classes, **SHARED, **PRESETS[size])


def preset_problem(size: str) -> str | None:
    """What is wrong with `size` as a key of PRESETS, or None."""
    return None if size in PRESETS else f"{size!r} is not a preset; known: {', '.join(PRESETS)}"


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# Every model size, in one table: SHARED holds what all presets have in common, PRESETS the rest.
# The names 2M..32M are the trainable parameter counts (+-10%, checked by tests/test_model.py); "tiny" is
# for tests, "small" for CPU training (pooled stems, 8-frame tokens; see the module docstring for why).
# Going up, the parameters go where they are cheap: the Transformer, the last (smallest) CNN stages, the
# head; each branch's first stage, on a large map, stays thin everywhere.
SHARED: dict[str, Any] = {
    "wide_kernels": ((9, 3), (3, 9)),
    "wide_pool": (2, 4),  # time shrinks faster than frequency
    "ff_mult": 4,
    "attn_dropout": 0.0,
    "dropout": 0.3,
}
# fmt: off
PRESETS: dict[str, dict[str, Any]] = {
    "tiny":  dict(stem_channels=4, square_channels=(4, 16), square_depth=1, wide_channels=(4, 16), stem_pool=False,
                  d_model=32, n_heads=2, n_layers=1, patch=4, head_hidden=(32,)),
    "small": dict(stem_channels=8, square_channels=(32, 64, 128), square_depth=1, wide_channels=(32, 64),
                  stem_pool=True, d_model=128, n_heads=4, n_layers=2, patch=8, head_hidden=(256,)),
    "2M":    dict(stem_channels=8, square_channels=(8, 32, 64, 128, 256), square_depth=1,
                  wide_channels=(8, 64, 128), stem_pool=False,
                  d_model=192, n_heads=4, n_layers=3, patch=4, head_hidden=(128,)),
    "8M":    dict(stem_channels=8, square_channels=(8, 32, 64, 128, 256), square_depth=2,
                  wide_channels=(8, 64, 256), stem_pool=False,
                  d_model=256, n_heads=4, n_layers=3, patch=4, head_hidden=(2048, 1024)),
    "16M":   dict(stem_channels=8, square_channels=(8, 32, 64, 128, 256), square_depth=2,
                  wide_channels=(8, 64, 256), stem_pool=False,
                  d_model=384, n_heads=6, n_layers=6, patch=8, head_hidden=(2048, 1024)),
    "32M":   dict(stem_channels=8, square_channels=(8, 32, 64, 128, 256, 512), square_depth=2,
                  wide_channels=(8, 64, 256), stem_pool=False,
                  d_model=512, n_heads=8, n_layers=7, patch=8, head_hidden=(2048, 1024)),
}
# fmt: on


class ConvBNReLU(nn.Sequential):
    """Conv2d ('same' padding, no bias: BatchNorm has one) -> BatchNorm2d -> ReLU.

    (B, c_in, F, T) -> (B, c_out, F / stride[0], T / stride[1])
    """

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)):
        padding = (kernel[0] // 2, kernel[1] // 2)
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class ConvBranch(nn.Module):
    """Strided stem (+ max-pool if `stem_pool`), then stages of `depth` convolutions + max-pool, then the mean
    over frequency and time.

    (B, 1, n_mels, T) -> (B, channels[-1])
    """

    def __init__(
        self,
        stem_channels: int,
        channels: tuple[int, ...],
        kernels: tuple[tuple[int, int], ...],
        pool: tuple[int, int],
        depth: int = 1,
        stem_pool: bool = False,
    ):
        super().__init__()
        kernel = itertools.cycle(kernels)  # the stem takes the first, every later conv the next in turn
        self.stem = ConvBNReLU(1, stem_channels, next(kernel), stride=pool)  # strides as much as a stage pools
        if stem_pool:  # appended, so the stem's parameters keep their names either way
            self.stem.append(nn.MaxPool2d(pool, ceil_mode=True))
        stages: list[nn.Module] = []
        c_in = stem_channels
        for c_out in channels:
            for i in range(depth):
                stages.append(ConvBNReLU(c_in if i == 0 else c_out, c_out, next(kernel)))
            stages.append(nn.MaxPool2d(pool, ceil_mode=True))  # ceil: an odd last row/column is kept
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.out_features = c_in

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))  # (B, C, F', T')
        return x.mean(dim=(2, 3))  # (B, C)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Sinusoidal position encoding (Vaswani et al. 2017), as in whisper: (length, channels)."""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]  # (length, channels / 2)
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)  # (length, channels)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask): (B, N, D) -> (B, N, D)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.n_heads, D // self.n_heads)  # (B, N, 3, H, D/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D/H)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, D/H)
        return self.out(y.transpose(1, 2).reshape(B, N, D))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(LN(x)), then x + MLP(LN(x)). (B, N, D) -> (B, N, D)."""

    def __init__(self, d_model: int, n_heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Linear(ff_mult * d_model, d_model)
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x)))  # (B, N, D)
        return x + self.dropout(self.mlp(self.mlp_norm(x)))  # (B, N, D)


class TemporalBranch(nn.Module):
    """Non-overlapping patches of `patch` frames -> tokens + positions -> Transformer -> mean over tokens.

    (B, n_mels, T) -> (B, d_model)
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        # one linear map of each patch's n_mels x patch values to a token, as a strided convolution (ViT)
        self.embed = nn.Conv1d(cfg.n_mels, cfg.d_model, kernel_size=cfg.patch, stride=cfg.patch)
        n_tokens = cfg.n_frames // cfg.patch
        self.register_buffer("positions", sinusoids(n_tokens, cfg.d_model), persistent=False)
        self.blocks = nn.Sequential(
            *(Block(cfg.d_model, cfg.n_heads, cfg.ff_mult, cfg.attn_dropout) for _ in range(cfg.n_layers))
        )
        self.norm = nn.LayerNorm(cfg.d_model)  # pre-norm blocks leave the residual stream unnormalised

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x).transpose(1, 2)  # (B, N, D), N = T // patch (a last partial patch is dropped)
        n = x.shape[1]
        if n > len(self.positions):
            raise ValueError(f"{n} tokens, but the model was built for at most {len(self.positions)}")
        x = x + self.positions[:n]  # (B, N, D)
        x = self.norm(self.blocks(x))  # (B, N, D)
        return x.mean(dim=1)  # (B, D)


class Classifier(nn.Module):
    """Log-mel spectrogram in dB (B, n_mels, T) -> emotion logits (B, n_classes)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # per mel band, so raw dB can be fed; no affine part (the layers after it have their own scale and
        # shift), so no gradient is needed for the input, which spares the stems' slow 1-channel input grad
        self.input_norm = nn.BatchNorm1d(cfg.n_mels, affine=False)
        self.square = ConvBranch(
            cfg.stem_channels,
            cfg.square_channels,
            kernels=((3, 3),),
            pool=(2, 2),
            depth=cfg.square_depth,
            stem_pool=cfg.stem_pool,
        )
        self.wide = ConvBranch(
            cfg.stem_channels, cfg.wide_channels, cfg.wide_kernels, pool=cfg.wide_pool, stem_pool=cfg.stem_pool
        )
        self.temporal = TemporalBranch(cfg)
        head: list[nn.Module] = []
        width = self.square.out_features + self.wide.out_features + cfg.d_model
        for hidden in cfg.head_hidden:
            head += [nn.Dropout(cfg.dropout), nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        head += [nn.Dropout(cfg.dropout), nn.Linear(width, cfg.n_classes)]
        self.head = nn.Sequential(*head)
        self.apply(_init_weights)
        # conv weights stored channels-last make every feature map channels-last too: oneDNN's kernels for
        # that layout are faster on CPU, most of all for the 1-channel stems' backward (values are unchanged)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, n_mels, T) log-mel in dB -> logits (B, n_classes)."""
        x = self.input_norm(x)  # (B, n_mels, T)
        image = x.unsqueeze(1)  # (B, 1, n_mels, T)
        features = [self.square(image), self.wide(image), self.temporal(x)]  # (B, C_sq), (B, C_wd), (B, D)
        return self.head(torch.cat(features, dim=1))  # (B, n_classes)


class Ensemble(nn.Module):
    """The model a bundle holds: one or more Classifiers of one config (trained from successive seeds),
    averaged in probability. x (B, n_mels, T) -> log of the members' mean class probabilities (B, n_classes):
    logits like a Classifier's, whose softmax is the mean of the members' softmaxes."""

    def __init__(self, members: Sequence[Classifier]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if any(member.cfg != members[0].cfg for member in members):
            raise ValueError("the members of an ensemble must share one config")
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> ModelConfig:
        return self.members[0].cfg

    def forward(self, x: Tensor) -> Tensor:
        log_probs = torch.stack([F.log_softmax(member(x).float(), dim=-1) for member in self.members])  # (M, B, C)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))  # (B, n_classes)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")  # He init, ReLU follows
    elif isinstance(module, (nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(module.weight, std=0.02)  # as GPT-2 / nanoGPT
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)) and module.weight is not None:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# FlopCounterMode has no formula for the CPU flash-attention kernels: count them as the GPU's
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda q, k, v, *_, **__: flop_counter.sdpa_flop_count(q, k, v)
    ),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda g, q, k, v, *_, **__: flop_counter.sdpa_backward_flop_count(g, q, k, v)
    ),
}


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    """torch's FLOP counter, attention on the CPU included: `with flop_counter_mode() as counter: ...`."""
    return flop_counter.FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
