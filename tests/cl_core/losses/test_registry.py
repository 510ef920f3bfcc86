import pytest
from torch import nn

from cl_core.losses import LOSSES, build_loss


def test_every_loss_of_the_issue_is_registered():
    assert set(LOSSES) == {"ntxent", "infonce", "triplet", "contrastive", "supcon", "clip", "mnrl", "dcl", "moco", "cosent",
                           "sampled_softmax"}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_builds_with_defaults_and_documents_its_paper_and_shapes(name):
    loss = build_loss(name)
    assert isinstance(loss, nn.Module)
    module_doc = __import__(type(loss).__module__, fromlist=["_"]).__doc__
    assert "20" in module_doc  # cites the paper with its year
    assert "(B, D)" in type(loss).forward.__doc__


@pytest.mark.parametrize("name", ["ntxent", "supcon", "clip", "mnrl", "dcl", "cosent", "sampled_softmax"])
def test_in_batch_negative_losses_can_gather_across_workers(name):
    assert build_loss(name, gather_distributed=False).gather_distributed is False
    assert build_loss(name).gather_distributed is True

