"""The model as ONNX, to ship without PyTorch: `ser export --format onnx` writes a bundle's ensemble (every member,
averaged in probability as the bundle does) as one ONNX graph, log-mel in, log-probabilities out; the labels,
the front-end settings, the model config and how it was trained go in the file's metadata (METADATA_KEY), so
the one file is all `ser predict --model model.onnx` needs. The front end (audio to log-mel) stays ser's own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ser.audio import FrontEndConfig
from ser.bundle import Bundle, BundleError
from ser.errors import UserError
from ser.io import atomic_path
from ser.model import ModelConfig
from ser.params import ParamsError

OPSET = 18
METADATA_KEY = "ser"  # metadata_props key of the JSON below
FORMAT, FORMAT_VERSION = "ser-onnx", 1
INPUT, OUTPUT = "logmel", "log_probabilities"  # (batch, n_mels, n_frames) dB -> (batch, n_classes)
EXPORT_BATCH = 2  # clips in the example input; the batch dimension stays free
TOLERANCE = 1e-4  # the largest difference of an exported model's probabilities from its bundle's that is written


class ExportError(UserError):
    """An exported model that does not compute what its bundle computes: it is not written."""


def export_onnx(bundle: Bundle, path: Path) -> float:
    """Write `bundle`'s model to `path` (atomically) as ONNX, with its metadata, and return the largest
    difference of its probabilities from the bundle's (largest_difference). ExportError, and nothing written,
    if that difference is above TOLERANCE: the file is checked before it takes its name."""
    import onnx

    cfg = bundle.model_config
    model = bundle.model.cpu().eval()
    example = torch.zeros(EXPORT_BATCH, cfg.n_mels, cfg.n_frames)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": list(bundle.labels),
        "model_config": dataclasses.asdict(cfg),
        "frontend": bundle.frontend.as_dict(),
        "members": len(bundle.model.members),
        "info": bundle.info,
    }
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # its notes on operators it did not need (torchvision's)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata, default=str)})
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
        difference = largest_difference(bundle, tmp)
        if not difference <= TOLERANCE:  # NaN too
            raise ExportError(
                f"{path}: not written: the exported model's probabilities differ from the bundle's by "
                f"{difference:.1e}, more than {TOLERANCE:.0e}; report it with your torch and onnxruntime versions"
            )
    return difference


class OnnxEnsemble(torch.nn.Module):
    """An exported model run by onnxruntime (on the CPU), in the place of a bundle's Ensemble: log-mel (B,
    n_mels, n_frames) -> log-probabilities (B, n_classes), as torch tensors on the input's device."""

    def __init__(self, session, members: int):
        super().__init__()
        self.session, self.n_members = session, members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (out,) = self.session.run([OUTPUT], {INPUT: features})
        return torch.from_numpy(out).to(x.device)


def load_onnx_bundle(path: str | Path) -> Bundle:
    """A Bundle whose model runs the ONNX file `path` with onnxruntime; BundleError naming the file and the
    problem for a missing or unreadable file, or one `ser export` did not write."""
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: model file not found; write one with `ser export --format onnx`")
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types, not importable by one name
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BundleError(f"{path}: not a readable ONNX model ({first_line})") from error
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    try:
        metadata = json.loads(text) if text else None
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise BundleError(f"{path}: an ONNX model without ser's metadata; export it with `ser export --format onnx`")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: ser ONNX format version {metadata.get('format_version')}, this ser reads {FORMAT_VERSION}; "
            "export it again with this version"
        )
    try:
        model_config = ModelConfig(**metadata["model_config"])
        frontend = FrontEndConfig.from_dict(metadata["frontend"], f"{path}: frontend")
        labels = tuple(metadata["labels"])
        members = int(metadata["members"])
    except ParamsError as error:
        raise BundleError(str(error)) from error
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path}: its metadata does not match this version of ser ({error})") from error
    model = OnnxEnsemble(session, members)
    return Bundle(model=model, model_config=model_config, frontend=frontend, labels=labels, info=metadata["info"])


def largest_difference(bundle: Bundle, path: Path, clips: int = 4, seed: int = 0) -> float:
    """The largest absolute difference between the probabilities of the exported file and of `bundle`'s model
    on `clips` random log-mels of the model's shape (dB around real levels)."""
    cfg = bundle.model_config
    generator = torch.Generator().manual_seed(seed)
    x = -40.0 + 20.0 * torch.randn(clips, cfg.n_mels, cfg.n_frames, generator=generator)
    with torch.inference_mode():
        ours = torch.softmax(bundle.model.cpu().eval()(x), dim=-1)
        theirs = torch.softmax(load_onnx_bundle(path).model(x), dim=-1)
    return float((ours - theirs).abs().max())
