import pytest
import torch

from cl_core.views import SimCLRViews


@pytest.mark.parametrize("channels", [1, 3])
def test_two_different_views_of_the_right_shape(channels):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, channels, 20, 20), dtype=torch.uint8)
    view1, view2 = SimCLRViews(16, channels)(images)
    assert view1.shape == view2.shape == (6, channels, 16, 16)
    assert view1.dtype == torch.float32
    assert 0.0 <= view1.min() and view1.max() <= 1.0
    assert not torch.allclose(view1, view2)
    # Per-sample parameters: two identical images in one batch get different crops.
    same = images[:1].repeat(2, 1, 1, 1)
    a, _ = SimCLRViews(16, channels)(same)
    assert not torch.allclose(a[0], a[1])


def test_rejects_unsupported_channels():
    with pytest.raises(ValueError, match="channels"):
        SimCLRViews(16, 2)
