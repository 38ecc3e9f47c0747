"""The classifier: preset sizes, shapes, the two CNN branches, rebuilding from a saved config, learning."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ser.corpora import EMOTIONS
from ser.model import PRESETS, SHARED, Classifier, Ensemble, ModelConfig, count_parameters, flop_counter_mode

N_MELS, N_FRAMES = 64, 188  # the shape of generic test inputs; preset sizes and costs use the repository's
N_CLASSES = len(EMOTIONS)
CPU_ATTENTION = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def build(size: str, n_mels: int = N_MELS, n_frames: int = N_FRAMES, n_classes: int = N_CLASSES) -> Classifier:
    return Classifier(ModelConfig.from_preset(size, n_mels, n_frames, n_classes))


@pytest.fixture(scope="module")
def shape(frontend) -> tuple[int, int]:
    """(n_mels, n_frames) of the repository's front end: what the presets are sized and costed for."""
    return frontend.melspec.n_mels, frontend.n_frames


def spectrograms(batch: int, n_mels: int = N_MELS, n_frames: int = N_FRAMES, seed: int = 0) -> torch.Tensor:
    """Random log-mel-like input in dB (about -80..0), as the front end writes it."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n_mels, n_frames, generator=g) * 15 - 40).clamp(-80, 0)


@pytest.mark.parametrize("size", ["2M", "8M", "16M", "32M"])
def test_named_presets_have_the_parameter_count_of_their_name(size: str, shape) -> None:
    n = count_parameters(build(size, *shape))
    target = float(size.removesuffix("M")) * 1e6
    assert abs(n - target) <= 0.1 * target, f"{size}: {n:,} parameters"


def test_count_parameters_counts_trainable_values_only() -> None:
    layer = nn.Linear(3, 2)  # 3 x 2 weights and 2 biases
    assert count_parameters(layer) == 8
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 6
    assert count_parameters(nn.BatchNorm1d(5, affine=False)) == 0  # running statistics are buffers


def test_tiny_and_small_sizes(shape) -> None:
    assert count_parameters(build("tiny", *shape)) < 100_000
    assert 500_000 <= count_parameters(build("small", *shape)) <= 1_500_000


@pytest.mark.parametrize(("size", "max_gflop"), [("small", 0.15), ("8M", 0.6)])
def test_forward_cost_per_clip(size: str, max_gflop: float, shape) -> None:
    # train mode: counts what training pays for
    model = build(size, *shape).train()
    batch = 2
    with flop_counter_mode() as counter:
        model(spectrograms(batch, *shape))
    per_module = counter.get_flop_counts()
    for branch in ("square", "wide", "temporal", "head"):
        assert sum(per_module[f"Classifier.{branch}"].values()) > 0, branch
    # the CPU attention kernel is counted as the GPU's: q @ k^T and weights @ v, 2 FLOPs per multiply-add,
    # i.e. 4 * batch * tokens^2 * d_model per layer
    cfg = model.cfg
    tokens = shape[1] // cfg.patch
    assert per_module["Global"][CPU_ATTENTION] == cfg.n_layers * 4 * batch * tokens**2 * cfg.d_model
    assert counter.get_total_flops() / batch <= max_gflop * 1e9


def test_the_flop_counter_counts_cpu_attention_backward_too() -> None:
    q, k, v = (torch.randn(2, 4, 10, 8, requires_grad=True) for _ in range(3))  # (B, H, N, D/H)
    with flop_counter_mode() as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    counts = counter.get_flop_counts()["Global"]
    matmul = 2 * 2 * 4 * 10 * 10 * 8  # one B x H x N x N x D/H product of multiply-adds, 2 FLOPs each
    assert counts[CPU_ATTENTION] == 2 * matmul  # q @ k^T, weights @ v
    # q @ k^T again (flash attention recomputes it), then the gradients of v, the weights, q and k
    assert counts[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward] == 5 * matmul


@pytest.mark.parametrize(("batch", "n_mels", "n_frames"), [(2, 64, 188), (5, 64, 188), (3, 40, 94), (4, 64, 250)])
def test_output_is_one_logit_per_class(batch: int, n_mels: int, n_frames: int) -> None:
    model = build("tiny", n_mels, n_frames)
    x = spectrograms(batch, n_mels, n_frames)
    assert model.train()(x).shape == (batch, 8)
    out = model.eval()(x)
    assert out.shape == (batch, 8)
    assert torch.isfinite(out).all()


def test_other_class_counts_and_shorter_inputs() -> None:
    model = build("tiny", N_MELS, N_FRAMES, n_classes=4).eval()
    assert model(spectrograms(2)).shape == (2, 4)
    assert model(spectrograms(2, n_frames=120)).shape == (2, 4)  # shorter clip than built for
    assert model(spectrograms(1)).shape == (1, 4)
    with pytest.raises(ValueError, match="tokens"):
        model(spectrograms(2, n_frames=2 * N_FRAMES))  # longer than the positions it was built with


def test_the_two_cnn_branches_see_differently() -> None:
    model = build("8M")

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
    cfg = dataclasses.replace(ModelConfig.from_preset("tiny", N_MELS, N_FRAMES, N_CLASSES), dropout=0.0)
    model = Classifier(cfg).train()
    x = spectrograms(4)
    torch.testing.assert_close(model(x), model(x - 30.0), atol=1e-4, rtol=1e-4)


def test_rebuilding_from_the_config_dict_gives_the_same_model() -> None:
    torch.manual_seed(0)
    model = build("small", 40, 150, n_classes=6)
    model.train()(spectrograms(8, 40, 150))  # move the BatchNorm running statistics off their defaults
    saved = json.loads(json.dumps(dataclasses.asdict(model.cfg)))  # as it is stored next to the weights

    torch.manual_seed(1)  # different initial weights: only the state dict may make them equal
    rebuilt = Classifier(ModelConfig(**saved))
    assert rebuilt.cfg == model.cfg
    # JSON's lists, nested ones included, are tuples again: the config is hashable like the original
    assert rebuilt.cfg.wide_kernels == ((9, 3), (3, 9)) and type(rebuilt.cfg.wide_kernels[0]) is tuple
    assert hash(rebuilt.cfg) == hash(model.cfg)
    rebuilt.load_state_dict(model.state_dict())

    x = spectrograms(3, 40, 150, seed=1)
    assert torch.equal(model.eval()(x), rebuilt.eval()(x))


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="'3M' is not a preset"):
        ModelConfig.from_preset("3M", N_MELS, N_FRAMES, N_CLASSES)
    tiny = ModelConfig.from_preset("tiny", N_MELS, N_FRAMES, N_CLASSES)
    with pytest.raises(ValueError, match="n_heads"):
        dataclasses.replace(tiny, d_model=100, n_heads=3)
    with pytest.raises(ValueError, match="even"):
        dataclasses.replace(tiny, d_model=33, n_heads=3)  # half sine, half cosine positions
    with pytest.raises(ValueError, match="shorter than one patch"):
        dataclasses.replace(tiny, n_frames=tiny.patch - 1)
    assert set(PRESETS) == {"tiny", "small", "2M", "8M", "16M", "32M"}
    config = ModelConfig.from_preset("2M", 40, 94, 6)
    assert (config.n_mels, config.n_frames, config.n_classes) == (40, 94, 6)
    assert (config.d_model, config.n_heads, config.n_layers, config.patch) == (192, 4, 3, 4)
    assert config.wide_kernels == ((9, 3), (3, 9)) and config.dropout == 0.3  # from SHARED
    # SHARED and each preset together set every field but the input and output sizes, none twice
    inputs = {"n_mels", "n_frames", "n_classes"}
    for size, values in PRESETS.items():
        assert not set(values) & set(SHARED), size
        assert set(values) | set(SHARED) | inputs == {f.name for f in dataclasses.fields(ModelConfig)}, size


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = build("tiny").train()
    F.cross_entropy(model(spectrograms(4)), torch.tensor([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_tiny_model_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_preset("tiny", N_MELS, N_FRAMES, N_CLASSES), dropout=0.0)
    model = Classifier(cfg).train()
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
    cfg = ModelConfig.from_preset("tiny", N_MELS, N_FRAMES, N_CLASSES)
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
    assert Ensemble(members).config == cfg
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
    other = Classifier(dataclasses.replace(cfg, n_classes=4))
    with pytest.raises(ValueError, match="share one config"):
        Ensemble([*members, other])
