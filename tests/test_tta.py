"""Test-time averaging over shifted windows (ser.tta): the shifts, the shifted log-mel, and the averaged model."""

import numpy as np
import pytest
import torch

from ser.cli import build_parser, predict_options
from ser.corpora import EMOTIONS
from ser.evaluation import predict_proba
from ser.model import Classifier, Ensemble, ModelConfig
from ser.tta import SHIFTS_S, ShiftAveraged, shift_frames, shifted


def test_the_default_front_end_shifts_by_whole_hops_up_to_a_quarter_second(frontend):  # 16 kHz, hop 256: 16 ms
    assert shift_frames(frontend) == (-16, -8, 0, 8, 16)
    assert max(SHIFTS_S) == pytest.approx(0.25) and 0.0 in SHIFTS_S


def test_shifted_moves_frames_and_fills_with_each_clips_floor():
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], [[-9.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    later = shifted(x, 1)
    torch.testing.assert_close(later[0], torch.tensor([[1.0, 1.0, 2.0, 3.0], [1.0, 5.0, 6.0, 7.0]]))
    torch.testing.assert_close(later[1, :, 0], torch.tensor([-9.0, -9.0]))  # the second clip's own floor
    earlier = shifted(x, -2)
    torch.testing.assert_close(earlier[0], torch.tensor([[3.0, 4.0, 1.0, 1.0], [7.0, 8.0, 1.0, 1.0]]))
    assert shifted(x, 0) is x
    with pytest.raises(ValueError, match="leaves nothing"):
        shifted(x, 4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    members = [Classifier(ModelConfig.from_preset("tiny", 16, 40, len(EMOTIONS))) for _ in range(2)]
    return Ensemble(members).eval()


def test_one_unshifted_position_is_the_model_itself(model):
    x = torch.randn(3, 16, 40) * 10 - 40
    with torch.inference_mode():
        torch.testing.assert_close(ShiftAveraged(model, (0,))(x), model(x), rtol=0, atol=0)


def test_the_average_is_the_mean_of_each_shifts_probabilities_in_one_pass(model):
    features = (np.random.default_rng(0).normal(size=(5, 16, 40)) * 10 - 40).astype(np.float32)
    shifts = (-4, 0, 3)
    each = [predict_proba(model, shifted(torch.from_numpy(features), s).numpy(), "cpu") for s in shifts]
    averaged = predict_proba(ShiftAveraged(model, shifts), features, "cpu", batch_size=2)
    np.testing.assert_allclose(averaged, np.mean(each, axis=0), atol=1e-6)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(averaged - each[1]).max() > 1e-4  # the shifts do change what the model hears
    with pytest.raises(ValueError, match="at least one shift"):
        ShiftAveraged(model, ())


def test_ser_predict_averages_over_shifts_unless_told_not_to():
    parser = build_parser()
    assert predict_options(parser.parse_args(["predict", "clip.wav"])).shifts is True
    assert predict_options(parser.parse_args(["predict", "--no-shifts", "clip.wav"])).shifts is False
