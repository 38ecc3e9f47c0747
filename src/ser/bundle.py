"""The model bundle: weights plus everything needed to rebuild and use them, loaded without running code."""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path

import torch

from ser.audio import FrontEndConfig
from ser.corpora import EMOTIONS
from ser.errors import UserError
from ser.io import atomic_path
from ser.model import Classifier, Ensemble, ModelConfig
from ser.params import ParamsError

FORMAT = "ser-model"
FORMAT_VERSION = 3  # bump when the bundle's layout or the model's code changes incompatibly


class BundleError(UserError, ValueError):
    """A model file that cannot be used: missing, corrupt, or from an incompatible version."""


@dataclasses.dataclass(frozen=True)
class Bundle:
    model: Ensemble  # one or more members, in eval mode
    model_config: ModelConfig  # of every member
    frontend: FrontEndConfig  # the features the model was trained on: prediction uses these, not params.yaml
    labels: tuple[str, ...]  # output index -> emotion
    info: dict  # how it was trained: params, kept epochs, validation scores

    @property
    def normalise(self) -> str:
        """How the model's input is normalised (ser.normalise): its training's `train.normalise`; "none" for
        a model trained before there was a choice."""
        return self.info.get("train", {}).get("normalise", "none")


def save_bundle(path: Path, model: Ensemble, frontend: FrontEndConfig, info: dict) -> None:
    """Write the bundle atomically: each member's weights and the config they share. Only tensors, strings,
    numbers, lists and dicts, so it loads with weights_only."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": list(EMOTIONS),
        "model_config": dataclasses.asdict(model.config),
        "frontend": frontend.as_dict(),
        "info": info,
        "state_dicts": [
            {name: tensor.detach().cpu() for name, tensor in member.state_dict().items()} for member in model.members
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
        raise BundleError(f"{path}: model file not found; train one with `dvc repro` or pass --model")
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
    if payload.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: model format version {payload.get('format_version')}, this ser reads {FORMAT_VERSION}; "
            "retrain it with this version (`dvc repro`) or use the ser version that made it"
        )
    try:
        model_config = ModelConfig(**payload["model_config"])
        frontend = FrontEndConfig.from_dict(payload["frontend"], f"{path}: frontend")
        labels = tuple(payload["labels"])
        if len(labels) != model_config.n_classes:
            raise ValueError(f"{len(labels)} labels for {model_config.n_classes} outputs")
        members = [Classifier(model_config) for _ in payload["state_dicts"]]
        for member, state_dict in zip(members, payload["state_dicts"], strict=True):
            if not all(torch.isfinite(tensor).all() for tensor in state_dict.values() if tensor.is_floating_point()):
                raise ValueError("some weights are NaN or infinite")
            member.load_state_dict(state_dict)
        model, info = Ensemble(members), dict(payload["info"])
    except ParamsError as error:
        raise BundleError(str(error)) from error
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
        raise BundleError(f"{path}: the bundle does not match this version of ser ({error})") from error
    return Bundle(
        model=model.to(device).eval(),
        model_config=model_config,
        frontend=frontend,
        labels=labels,
        info=info,
    )
