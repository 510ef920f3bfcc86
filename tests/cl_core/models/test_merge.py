import pytest
import torch

from cl_core.models.merge import interpolate_weights


def states():
    pretrained = {"encoder.w": torch.zeros(2, 3), "encoder.ids": torch.arange(3)}
    finetuned = {"encoder.w": torch.ones(2, 3) * 4, "encoder.ids": torch.arange(3) + 7, "projection.w": torch.full((2,), 5.0)}
    return pretrained, finetuned


@pytest.mark.parametrize("weight,expected", [(0.0, 0.0), (0.25, 1.0), (0.5, 2.0), (1.0, 4.0)])
def test_floats_under_the_prefix_are_interpolated(weight, expected):
    pretrained, finetuned = states()
    merged = interpolate_weights(pretrained, finetuned, weight, prefix="encoder.")
    assert torch.equal(merged["encoder.w"], torch.full((2, 3), expected))
    assert torch.equal(merged["encoder.ids"], finetuned["encoder.ids"])  # integer buffers are not blended
    assert torch.equal(merged["projection.w"], finetuned["projection.w"])  # outside the prefix: fine-tuned
    assert torch.equal(finetuned["encoder.w"], torch.full((2, 3), 4.0))  # inputs untouched


def test_a_merged_linear_layer_is_the_blend_of_the_two_layers():
    torch.manual_seed(0)
    first, second = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    merged = torch.nn.Linear(4, 3)
    merged.load_state_dict(interpolate_weights(first.state_dict(), second.state_dict(), 0.3))
    x = torch.randn(5, 4)
    torch.testing.assert_close(merged(x), 0.7 * first(x) + 0.3 * second(x))  # linear in its weights


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_weight_outside_zero_one_is_refused(weight):
    with pytest.raises(ValueError, match="finetuned_weight"):
        interpolate_weights(*states(), weight)


def test_missing_or_reshaped_tensors_are_named():
    pretrained, finetuned = states()
    with pytest.raises(ValueError, match="projection.w.*missing"):
        interpolate_weights(pretrained, finetuned, 0.5)
    pretrained["projection.w"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"projection.w.*\(3,\)"):
        interpolate_weights(pretrained, finetuned, 0.5)
