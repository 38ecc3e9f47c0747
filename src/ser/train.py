"""Training: AdamW with a one-cycle schedule, SpecAugment, model selection on validation UA only."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ser.corpora import CORPORA, EMOTIONS
from ser.evaluation import predict_proba, probability_table, scores_by_corpus
from ser.features import FeatureSplit
from ser.model import Classifier, Ensemble, ModelConfig, preset_problem
from ser.params import ModelParams, ParamsError, TrainParams


def check_choices(model: ModelParams, train: TrainParams, where: str) -> None:
    """ParamsError naming `where` (the params file) unless model.size is a preset and every corpus in
    train.corpora is one: the checks that need ser's tables, beyond the types and ranges ser.params checks."""
    if (problem := preset_problem(model.size)) is not None:
        raise ParamsError(f"{where}: model.size: {problem}")
    unknown = [corpus for corpus in train.corpora if corpus not in CORPORA]
    if unknown:
        raise ParamsError(f"{where}: train.corpora: {unknown} are not corpora; known: {list(CORPORA)}")


@dataclasses.dataclass
class TrainResult:
    model: Classifier  # with the weights of the best epoch (by validation UA), in eval mode
    history: pd.DataFrame  # one row per epoch: losses, accuracies, validation UA, learning rate, seconds, and
    # `kept`: the epoch whose weights were kept (or, with `averaged`, every epoch of the average)
    best_epoch: int  # the epoch whose weights were kept; with `averaged`, the last epoch of the average
    best_val: dict  # `scores_by_corpus` on the validation split of the kept weights
    averaged: bool  # the kept weights are the mean of the last `average_last` epochs', not one epoch's
    average_val: dict | None  # `scores_by_corpus` of the averaged weights on validation (None: not tried)
    seconds: float  # wall time of the whole training loop, validation included
    train_clips_per_s: float  # training steps only: forward + backward + optimiser step
    seed: int  # the seed it was trained from

    def summary(self, params: TrainParams) -> dict:
        """For metrics/train.json: the seed, which weights were kept, and validation UA per corpus."""
        weights = f"epoch {self.best_epoch}"
        if self.averaged:
            weights = f"mean of epochs {params.first_averaged_epoch}-{params.epochs}"
        summary = {
            "seed": self.seed,
            "best_epoch": self.best_epoch,
            "weights": weights,
            "val_ua": {name: scores["ua"] for name, scores in self.best_val.items()},
        }
        if self.average_val is not None:
            summary["val_ua_of_average"] = {name: scores["ua"] for name, scores in self.average_val.items()}
        return summary


@dataclasses.dataclass
class EnsembleResult:
    model: Ensemble  # every member's kept weights, in eval mode
    members: list[TrainResult]  # one per member, in seed order
    val: dict  # `scores_by_corpus` of `model` on the validation split
    history: pd.DataFrame  # the members' histories one after the other, with columns `member` and `run_epoch`
    seconds: float  # all members' training
    train_clips_per_s: float  # training steps of all members together


def label_indices(emotions: pd.Series) -> torch.Tensor:
    index = {emotion: i for i, emotion in enumerate(EMOTIONS)}
    return torch.tensor([index[e] for e in emotions], dtype=torch.long)


def sample_weights(table: pd.DataFrame, balance: str) -> torch.Tensor:
    """Loss weight of each training clip (N,), mean 1: inverse frequency of its group, so that every group
    weighs the same in total. Groups: the emotion ("class"), the (corpus, emotion) pair ("corpus_class"),
    or none ("none": all ones)."""
    if balance == "none":
        return torch.ones(len(table))
    keys = ["emotion"] if balance == "class" else ["corpus", "emotion"]
    group_sizes = table.groupby(keys)["emotion"].transform("size").to_numpy()
    weights = 1.0 / group_sizes
    return torch.from_numpy(weights / weights.mean()).float()


def selection_score(per_corpus: dict[str, dict], corpora: Sequence[str]) -> float:
    """The validation score that picks the checkpoint: the mean UA of the training corpora (`corpora`), each
    weighing the same, so that the easy corpus (TESS, near 1.0) cannot outvote the hard ones. A corpus left
    out of training stays unseen: its validation clips are scored, never used to choose."""
    missing = [corpus for corpus in corpora if corpus not in per_corpus]
    if missing:
        raise ValueError(f"no validation clips of {', '.join(missing)}: nothing to choose the weights with")
    return float(np.mean([per_corpus[corpus]["ua"] for corpus in corpora]))


def spec_augment(batch: torch.Tensor, params: TrainParams, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment masking of (B, n_mels, n_frames) spectrograms: random stretches of time and bands of
    frequency, different per clip, filled with the clip's mean level."""
    n_clips, n_mels, n_frames = batch.shape
    fill = batch.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    out = batch
    for count, widest, length, axis in (
        (params.time_masks, params.time_mask_frames, n_frames, 2),
        (params.freq_masks, params.freq_mask_bands, n_mels, 1),
    ):
        positions = torch.arange(length)
        for _ in range(count):
            width = torch.randint(0, widest + 1, (n_clips, 1), generator=generator)
            start = (torch.rand(n_clips, 1, generator=generator) * (length - width + 1)).long()
            masked = (positions >= start) & (positions < start + width)  # (B, length)
            out = torch.where(masked.unsqueeze(3 - axis), fill, out)
    return out


def mixup(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    n_classes: int,
    alpha: float,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): each clip mixed with a random partner from the same batch, one weight
    lam ~ Beta(alpha, alpha) per batch (the larger of lam and 1 - lam on the clip itself). Inputs
    (B, n_mels, n_frames) and loss weights (B,) mix linearly, class indices (B,) become mixed
    probabilities (B, n_classes)."""
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)
    partner = torch.randperm(len(inputs), generator=generator)
    one_hot = F.one_hot(targets, n_classes).float()  # (B, n_classes)
    mixed_inputs = lam * inputs + (1.0 - lam) * inputs[partner]
    return mixed_inputs, lam * one_hot + (1.0 - lam) * one_hot[partner], lam * weights + (1.0 - lam) * weights[partner]


def adamw(model: torch.nn.Module, params: TrainParams) -> torch.optim.AdamW:
    """The optimiser of every training run: AdamW at the schedule's peak rate, with decoupled weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def train_step(
    model: Classifier,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    label_smoothing: float,
    autocast: torch.autocast,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch (B, n_mels, n_frames): forward, the loss weighted per clip (B,),
    backward, optimiser step. Targets are class indices (B,) or class probabilities (B, n_classes).
    Returns the loss and the logits (B, n_classes), detached."""
    with autocast:
        logits = model(inputs)  # (B, n_classes)
    losses = F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=label_smoothing)  # (B,)
    loss = (losses * weights).sum() / weights.sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def validation_scores(
    model: torch.nn.Module, val: FeatureSplit, y_val: np.ndarray, corpora: Sequence[str], device: torch.device
) -> tuple:
    """(`scores_by_corpus` on the validation split, its selection score over `corpora`, the validation loss)."""
    val_probs = predict_proba(model, val.features, device)
    val_table = probability_table(val_probs, EMOTIONS).assign(
        corpus=val.table["corpus"], actual=np.take(EMOTIONS, y_val)
    )
    val_scores = scores_by_corpus(val_table)
    score = selection_score(val_scores, corpora)
    val_loss = float(F.nll_loss(torch.from_numpy(np.log(val_probs + 1e-12)), torch.from_numpy(y_val)))
    return val_scores, score, val_loss


def train_model(
    train: FeatureSplit,
    val: FeatureSplit,
    model_config: ModelConfig,
    params: TrainParams,
    device: torch.device,
) -> TrainResult:
    """Train a Classifier on `train`, keep the weights of the epoch with the best validation score
    (`selection_score`: the mean of the corpora's UAs). The test split is never seen here.

    Deterministic on the CPU for fixed params: the one global seed covers initial weights and dropout, a
    generator seeded from it draws batch order and masks. On CUDA, runs in bfloat16 autocast.
    """
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    mix_rng = np.random.default_rng(params.seed)  # mixup weights (Beta draws, which torch cannot seed per generator)
    n_classes = model_config.n_classes
    model = Classifier(model_config).to(device)
    x_train = torch.from_numpy(np.array(train.features))  # (N, n_mels, n_frames), read into memory once
    y_train = label_indices(train.table["emotion"])
    w_train = sample_weights(train.table, params.balance)  # (N,)
    y_val = label_indices(val.table["emotion"]).numpy()
    n_batches = len(x_train) // params.batch_size  # full batches only: BatchNorm needs more than one clip
    if n_batches == 0:
        raise ValueError(f"{len(x_train)} training clips: fewer than one batch of {params.batch_size}")

    optimizer = adamw(model, params)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=params.epochs * n_batches, pct_start=params.warmup
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    # running mean of the weights over the last `average_last` epochs (stochastic weight averaging)
    averaged = torch.optim.swa_utils.AveragedModel(model, use_buffers=False) if params.average_last else None
    history, best_state, best_val, best_score, best_epoch = [], None, {}, -math.inf, 0
    step_seconds, started = 0.0, time.perf_counter()
    epochs = tqdm(range(1, params.epochs + 1), desc="train", unit="epoch")
    for epoch in epochs:
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        epoch_start = time.perf_counter()
        for batch in range(n_batches):
            index = order[batch * params.batch_size : (batch + 1) * params.batch_size]
            inputs, targets, weights = spec_augment(x_train[index], params, generator), y_train[index], w_train[index]
            labels = targets.to(device, non_blocking=True)  # (B,) class indices, for the training accuracy
            if params.mixup > 0:  # targets become class probabilities (B, n_classes)
                inputs, targets, weights = mixup(inputs, targets, weights, n_classes, params.mixup, mix_rng, generator)
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            weights = weights.to(device, non_blocking=True)
            loss, logits = train_step(model, optimizer, inputs, targets, weights, params.label_smoothing, autocast)
            scheduler.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(index)
        step_seconds += time.perf_counter() - epoch_start

        if averaged is not None and epoch >= params.first_averaged_epoch:
            averaged.update_parameters(model)
        val_scores, score, val_loss = validation_scores(model, val, y_val, params.corpora, device)
        history.append(
            {
                "epoch": epoch,
                "train_loss": loss_sum / seen,
                "train_acc": correct / seen,
                "val_loss": val_loss,
                "val_acc": val_scores["all"]["wa"],
                "val_ua": val_scores["all"]["ua"],
                **{f"val_ua_{corpus}": result["ua"] for corpus, result in val_scores.items() if corpus != "all"},
                "val_score": score,
                "lr": scheduler.get_last_lr()[0],
                "seconds": time.perf_counter() - started,
            }
        )
        if score > best_score:
            best_state = copy.deepcopy(model.state_dict())
            best_val, best_score, best_epoch = val_scores, score, epoch
        epochs.set_postfix(loss=f"{loss_sum / seen:.3f}", val_score=f"{score:.3f}", best=best_epoch)

    average_val, is_averaged = None, False
    if averaged is not None:  # BatchNorm statistics of the mean weights, from the (unaugmented) training clips
        batches = (x_train[i : i + params.batch_size].to(device) for i in range(0, len(x_train), params.batch_size))
        torch.optim.swa_utils.update_bn(batches, averaged, device)
        average_val, average_score, _ = validation_scores(averaged.module, val, y_val, params.corpora, device)
        if average_score > best_score:
            best_state, best_val, best_score, best_epoch = (
                averaged.module.state_dict(),
                average_val,
                average_score,
                epoch,
            )
            is_averaged = True
    model.load_state_dict(best_state)
    history = pd.DataFrame(history)
    history["kept"] = history["epoch"] >= params.first_averaged_epoch if is_averaged else history["epoch"] == best_epoch
    return TrainResult(
        model=model.eval(),
        history=history,
        best_epoch=best_epoch,
        best_val=best_val,
        averaged=is_averaged,
        average_val=average_val,
        seconds=time.perf_counter() - started,
        train_clips_per_s=params.epochs * n_batches * params.batch_size / step_seconds,
        seed=params.seed,
    )


def train_ensemble(
    train: FeatureSplit,
    val: FeatureSplit,
    model_config: ModelConfig,
    params: TrainParams,
    device: torch.device,
) -> EnsembleResult:
    """Train `params.members` Classifiers with `train_model`, from seeds params.seed, params.seed + 1, ...;
    each keeps its own weights chosen on validation. Together they are the Ensemble that predicts the mean of
    their probabilities (with one member, that member's probabilities)."""
    members = []
    for index in range(params.members):
        if params.members > 1:
            print(f"train: member {index + 1} of {params.members}, seed {params.seed + index}")
        member_params = dataclasses.replace(params, seed=params.seed + index)
        members.append(train_model(train, val, model_config, member_params, device))
    model = Ensemble([member.model for member in members]).eval()
    val_scores, _, _ = validation_scores(
        model, val, label_indices(val.table["emotion"]).numpy(), params.corpora, device
    )
    history = pd.concat(
        [member.history.assign(member=index + 1) for index, member in enumerate(members)], ignore_index=True
    )
    history["run_epoch"] = np.arange(1, len(history) + 1)  # epochs trained so far, counting all members
    return EnsembleResult(
        model=model,
        members=members,
        val=val_scores,
        history=history,
        seconds=sum(member.seconds for member in members),
        # every member trains on as many clips: the overall rate is the harmonic mean of the members' rates
        train_clips_per_s=len(members) / sum(1 / member.train_clips_per_s for member in members),
    )
