"""ser: speech emotion recognition as a reproducible DVC pipeline.

The prediction API is importable from here (`from ser import Predictor`); it is loaded on first use, so
importing another part of the package (a stage script's `from ser.splitting import ...`) does not load
prediction and the model with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ser.predict import (
        Failure,
        Prediction,
        PredictOptions,
        Predictor,
        WindowPrediction,
        predictions_table,
    )

__all__ = [
    "Failure",
    "PredictOptions",
    "Prediction",
    "Predictor",
    "WindowPrediction",
    "predictions_table",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("ser.predict"), name)
    raise AttributeError(f"module 'ser' has no attribute {name!r}")
