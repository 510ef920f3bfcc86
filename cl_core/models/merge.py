"""Weight-space ensembling of a fine-tuned model with the pretrained one it started from.

WiSE-FT (Wortsman et al., 2022): the weights (1 - a) * pretrained + a * fine-tuned keep most of
what fine-tuning gained on data like the training pairs and lose less of what the pretrained
model knew about data unlike them. a = 1 is the fine-tuned model, a = 0 the pretrained one.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def interpolate_weights(
    pretrained: Mapping[str, torch.Tensor],
    finetuned: Mapping[str, torch.Tensor],
    finetuned_weight: float,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """`finetuned` with every floating-point tensor under `prefix` replaced by
    (1 - finetuned_weight) * pretrained + finetuned_weight * finetuned.

    Tensors outside `prefix` (e.g. a projection head the pretrained model lacks) and integer
    buffers (e.g. position ids) are taken from `finetuned` unchanged.

    Raises:
        ValueError: the weight is outside [0, 1], or a tensor under `prefix` is missing from
            `pretrained` or has another shape there.
    """
    if not 0.0 <= finetuned_weight <= 1.0:
        raise ValueError(f"finetuned_weight must be in [0, 1], got {finetuned_weight}")
    merged = {}
    for key, tuned in finetuned.items():
        if not key.startswith(prefix) or not tuned.is_floating_point():
            merged[key] = tuned
            continue
        base = pretrained.get(key)
        if base is None or base.shape != tuned.shape:
            found = "missing" if base is None else f"of shape {tuple(base.shape)}"
            raise ValueError(f"cannot interpolate {key}: {tuple(tuned.shape)} fine-tuned, {found} pretrained")
        merged[key] = torch.lerp(base.to(tuned.dtype), tuned, finetuned_weight)
    return merged
