"""Test-time averaging over shifted windows: a clip is heard at a few positions in its window, as training's
time shifts (augment.shift_s) heard it, and the probabilities are averaged. Adopted on validation
(reports/pilots/README.md); the evaluate stage and `ser predict` use it, training's selection does not."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ser.audio import FrontEndConfig

SHIFTS_S = (-0.25, -0.125, 0.0, 0.125, 0.25)  # s: later (+) or earlier (-) in the window, training's shift range


def shift_frames(frontend: FrontEndConfig, shifts_s: Sequence[float] = SHIFTS_S) -> tuple[int, ...]:
    """`shifts_s` in whole frames of the front end's hop (16 ms by default: 0, +-8 and +-16 frames)."""
    return tuple(round(s * frontend.audio.sample_rate / frontend.melspec.hop_length) for s in shifts_s)


def shifted(x: Tensor, frames: int) -> Tensor:
    """Log-mel (B, n_mels, T) moved `frames` later (earlier if negative); the frames it vacates take each
    clip's floor, its quietest value, as padding silence has."""
    if frames == 0:
        return x
    if abs(frames) >= x.shape[-1]:
        raise ValueError(f"a shift of {frames} frames leaves nothing of a {x.shape[-1]}-frame window")
    out = x.amin(dim=(1, 2), keepdim=True).expand_as(x).clone()
    if frames > 0:
        out[..., frames:] = x[..., :-frames]
    else:
        out[..., :frames] = x[..., -frames:]
    return out


class ShiftAveraged(nn.Module):
    """A model heard at several shifts: x (B, n_mels, T) -> log of the mean class probabilities over the
    shifts (B, n_classes), in one forward pass of the wrapped model (itself x -> logits or log-probabilities),
    so its softmax is the average of the shifted inputs' softmaxes. `shifts` (0,) is the model itself."""

    def __init__(self, model: nn.Module, shifts: Sequence[int]):
        super().__init__()
        if not shifts:
            raise ValueError("at least one shift, 0 for the clip as it is")
        self.model, self.shifts = model, tuple(shifts)

    def forward(self, x: Tensor) -> Tensor:
        if self.shifts == (0,):
            return self.model(x)
        batch = torch.cat([shifted(x, s) for s in self.shifts])  # (S * B, n_mels, T)
        log_probs = torch.log_softmax(self.model(batch).float(), dim=-1).unflatten(0, (len(self.shifts), -1))
        return torch.logsumexp(log_probs, dim=0) - torch.log(torch.tensor(float(len(self.shifts))))
