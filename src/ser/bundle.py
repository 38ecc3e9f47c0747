"""The model bundle: weights plus everything needed to rebuild and use them, loaded without running code."""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path

import torch

from ser.audio import FrontEndConfig
from ser.corpora import EMOTIONS
from ser.io import atomic_path
from ser.model import Classifier, Ensemble, ModelConfig

FORMAT = "ser-model"
FORMAT_VERSION = 2  # bump when the bundle's layout or the model's code changes incompatibly
READABLE_VERSIONS = (1, 2)  # 1: one Classifier's "state_dict"; 2: a list of them, "state_dicts" (an ensemble)


class BundleError(ValueError):
    """A model file that cannot be used: missing, corrupt, or from an incompatible version."""


@dataclasses.dataclass(frozen=True)
class Bundle:
    model: Classifier | Ensemble  # in eval mode; an Ensemble when the bundle holds more than one member
    model_config: ModelConfig
    frontend: FrontEndConfig  # the features the model was trained on: prediction uses these, not params.yaml
    labels: tuple[str, ...]  # output index -> emotion
    info: dict  # how it was trained: params, best epoch, validation scores


def save_bundle(
    path: Path, model: Classifier | Ensemble, model_config: ModelConfig, frontend: FrontEndConfig, info: dict
) -> None:
    """Write the bundle atomically: the weights of each member (one, for a Classifier) and the config they
    share. Only tensors, strings, numbers, lists and dicts: loadable with weights_only."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": list(EMOTIONS),
        "model_config": dataclasses.asdict(model_config),
        "frontend": frontend.as_dict(),
        "info": info,
        "state_dicts": [
            {name: tensor.detach().cpu() for name, tensor in member.state_dict().items()} for member in members
        ],
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_bundle(path: str | Path, device: torch.device | str = "cpu") -> Bundle:
    """Rebuild the model from the bundle alone, on `device`, in eval mode.

    Never executes code from the file (`weights_only=True`); raises BundleError naming the file and the
    problem for a missing, corrupt, foreign or incompatible file.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: model file not found; train one with `dvc repro train` or pass --model")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # its message is long and suggests weights_only=False: never
        raise BundleError(f"{path}: not a readable model file (corrupt, or not a plain-data torch file)") from error
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as error:
        # torch's unpickler raises any of these for truncated or corrupt files
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise BundleError(f"{path}: not a readable model file ({type(error).__name__}: {first_line})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BundleError(f"{path}: not a ser model bundle")
    if payload.get("format_version") not in READABLE_VERSIONS:
        raise BundleError(
            f"{path}: model format version {payload.get('format_version')}, this ser reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}; retrain it with this version or use the ser version that "
            "made it"
        )
    try:
        model_config = ModelConfig(**payload["model_config"])
        frontend = FrontEndConfig.from_dict(payload["frontend"], f"{path}: frontend")
        state_dicts = payload["state_dicts"] if payload["format_version"] >= 2 else [payload["state_dict"]]
        members = [Classifier(model_config) for _ in state_dicts]
        for member, state_dict in zip(members, state_dicts, strict=True):
            member.load_state_dict(state_dict)
        model = members[0] if len(members) == 1 else Ensemble(members)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
        raise BundleError(f"{path}: the bundle does not match this version of ser ({error})") from error
    return Bundle(
        model=model.to(device).eval(),
        model_config=model_config,
        frontend=frontend,
        labels=tuple(payload["labels"]),
        info=payload["info"],
    )
