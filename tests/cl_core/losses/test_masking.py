import pytest
import torch

from cl_core.losses.masking import false_negative_mask, gather_no_grad


def test_nothing_to_mask_gives_none():
    assert false_negative_mask(4) is None
    assert false_negative_mask(4, labels=torch.arange(4)) is None  # labels only count when asked


def test_same_id_or_same_label_marks_a_candidate():
    ids = torch.tensor([5, 6, 5, 7])
    labels = torch.tensor([0, 1, 1, 2])
    by_id = false_negative_mask(4, ids)
    assert by_id.tolist() == [
        [True, False, True, False],
        [False, True, False, False],
        [True, False, True, False],
        [False, False, False, True],
    ]
    both = false_negative_mask(4, ids, labels, mask_same_label=True)
    expected = [[ids[i] == ids[j] or labels[i] == labels[j] for j in range(4)] for i in range(4)]
    assert both.tolist() == expected
    assert torch.equal(false_negative_mask(4, labels=labels, mask_same_label=True), labels[:, None] == labels[None, :])


def test_single_process_gather_is_identity():
    ids = torch.arange(3)
    assert gather_no_grad(ids) is ids
    assert torch.equal(false_negative_mask(3, ids, gather=True), torch.eye(3, dtype=torch.bool))


def test_rejects_missing_labels_bad_shapes_and_float_keys():
    with pytest.raises(ValueError, match="mask_same_label=True needs labels"):
        false_negative_mask(3, mask_same_label=True)
    with pytest.raises(ValueError, match="ids must have shape"):
        false_negative_mask(3, torch.arange(4))
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        false_negative_mask(3, labels=torch.zeros(3), mask_same_label=True)
