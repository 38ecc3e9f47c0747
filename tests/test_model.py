"""The classifier: preset sizes, shapes, the two CNN branches, rebuilding from a saved config, learning."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ser.model import PRESETS, Classifier, Ensemble, ModelConfig, build_model, count_parameters

N_MELS, N_FRAMES = 64, 188

# FlopCounterMode has no formula for the CPU flash-attention kernels: count them as on the GPU
aten = torch.ops.aten
CPU_ATTENTION_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *_, **__: sdpa_flop_count(q, k, v),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda g, q, k, v, *_, **__: sdpa_backward_flop_count(g, q, k, v)
    ),
}


def spectrograms(batch: int, n_mels: int = N_MELS, n_frames: int = N_FRAMES, seed: int = 0) -> torch.Tensor:
    """Random log-mel-like input in dB (about -80..0), as the front end writes it."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n_mels, n_frames, generator=g) * 15 - 40).clamp(-80, 0)


@pytest.mark.parametrize("size", ["2M", "8M", "16M", "32M"])
def test_named_presets_have_the_parameter_count_of_their_name(size: str) -> None:
    model = build_model(size, N_MELS, N_FRAMES)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    target = float(size.removesuffix("M")) * 1e6
    assert abs(n - target) <= 0.1 * target, f"{size}: {n:,} parameters"
    assert count_parameters(model) == n


def test_tiny_and_small_sizes() -> None:
    assert count_parameters(build_model("tiny", N_MELS, N_FRAMES)) < 100_000
    assert 500_000 <= count_parameters(build_model("small", N_MELS, N_FRAMES)) <= 1_500_000


@pytest.mark.parametrize(("size", "max_gflop"), [("small", 0.15), ("8M", 0.6)])
def test_forward_cost_per_clip(size: str, max_gflop: float) -> None:
    # train mode: counts what training pays for
    model = build_model(size, N_MELS, N_FRAMES).train()
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        model(spectrograms(2))
    per_module = counter.get_flop_counts()
    for branch in ("square", "wide", "temporal", "head"):
        assert sum(per_module[f"Classifier.{branch}"].values()) > 0, branch
    attention = per_module["Global"][aten._scaled_dot_product_flash_attention_for_cpu]
    assert attention > 0
    assert counter.get_total_flops() / 2 <= max_gflop * 1e9


@pytest.mark.parametrize(("batch", "n_mels", "n_frames"), [(2, 64, 188), (5, 64, 188), (3, 40, 94), (4, 64, 250)])
def test_output_is_one_logit_per_class(batch: int, n_mels: int, n_frames: int) -> None:
    model = build_model("tiny", n_mels, n_frames)
    x = spectrograms(batch, n_mels, n_frames)
    assert model.train()(x).shape == (batch, 8)
    out = model.eval()(x)
    assert out.shape == (batch, 8)
    assert torch.isfinite(out).all()


def test_other_class_counts_and_shorter_inputs() -> None:
    model = build_model("tiny", N_MELS, N_FRAMES, n_classes=4).eval()
    assert model(spectrograms(2)).shape == (2, 4)
    assert model(spectrograms(2, n_frames=120)).shape == (2, 4)  # shorter clip than built for
    assert model(spectrograms(1)).shape == (1, 4)
    with pytest.raises(ValueError, match="tokens"):
        model(spectrograms(2, n_frames=2 * N_FRAMES))  # longer than the positions it was built with


def test_the_two_cnn_branches_see_differently() -> None:
    model = build_model("8M", N_MELS, N_FRAMES)

    def kernels(branch: nn.Module) -> set[tuple[int, ...]]:
        return {tuple(m.kernel_size) for m in branch.modules() if isinstance(m, nn.Conv2d)}

    def pools(branch: nn.Module) -> set[tuple[int, ...]]:
        return {tuple(m.kernel_size) for m in branch.modules() if isinstance(m, nn.MaxPool2d)}

    assert kernels(model.square) == {(3, 3)}
    wide = kernels(model.wide)
    assert wide and not wide & kernels(model.square)
    assert any(kf > kt for kf, kt in wide) and any(kt > kf for kf, kt in wide)  # tall and wide kernels
    assert pools(model.square) != pools(model.wide)
    assert len([m for m in model.square.modules() if isinstance(m, nn.Conv2d)]) > len(
        [m for m in model.wide.modules() if isinstance(m, nn.Conv2d)]
    )  # the square branch is the deeper one


def test_raw_db_offsets_are_normalised_away() -> None:
    # the input BatchNorm works per mel band on batch statistics: a constant dB offset changes nothing
    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_preset("tiny"), dropout=0.0)
    model = Classifier(cfg).train()
    x = spectrograms(4)
    torch.testing.assert_close(model(x), model(x - 30.0), atol=1e-4, rtol=1e-4)


def test_rebuilding_from_the_config_dict_gives_the_same_model() -> None:
    torch.manual_seed(0)
    model = build_model("small", 40, 150, n_classes=6)
    model.train()(spectrograms(8, 40, 150))  # move the BatchNorm running statistics off their defaults
    saved = json.loads(json.dumps(dataclasses.asdict(model.cfg)))  # as it is stored next to the weights
    assert all(not isinstance(v, tuple) for v in saved.values())

    torch.manual_seed(1)  # different initial weights: only the state dict may make them equal
    rebuilt = Classifier(ModelConfig(**saved))
    assert rebuilt.cfg == model.cfg
    rebuilt.load_state_dict(model.state_dict())

    x = spectrograms(3, 40, 150, seed=1)
    assert torch.equal(model.eval()(x), rebuilt.eval()(x))


def test_config_checks() -> None:
    with pytest.raises(KeyError, match="unknown model size"):
        ModelConfig.from_preset("3M")
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(d_model=100, n_heads=3)
    assert set(PRESETS) == {"tiny", "small", "2M", "8M", "16M", "32M"}
    assert ModelConfig.from_preset("2M", 40, 94, 6) == dataclasses.replace(
        PRESETS["2M"], n_mels=40, n_frames=94, n_classes=6
    )


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", N_MELS, N_FRAMES).train()
    F.cross_entropy(model(spectrograms(4)), torch.tensor([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_tiny_model_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = Classifier(dataclasses.replace(ModelConfig.from_preset("tiny"), dropout=0.0)).train()
    x, y = spectrograms(16), torch.arange(16) % 8
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.5  # about ln 8 at the start: no class favoured
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities() -> None:
    cfg = ModelConfig.from_preset("tiny", N_MELS, N_FRAMES)
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(Classifier(cfg).eval())
    x = spectrograms(5)
    with torch.no_grad():
        probabilities = torch.stack([torch.softmax(member(x), dim=-1) for member in members])  # (3, 5, 8)
        torch.testing.assert_close(torch.softmax(Ensemble(members)(x), dim=-1), probabilities.mean(dim=0))
        torch.testing.assert_close(torch.softmax(Ensemble(members[:1])(x), dim=-1), probabilities[0])
    assert count_parameters(Ensemble(members)) == 3 * count_parameters(members[0])
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
