"""CLIP's symmetric contrastive loss (Radford et al. 2021, "Learning Transferable Visual Models
From Natural Language Supervision")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cl_core import distributed


class CLIPLoss(nn.Module):
    """Symmetric cross-entropy over image-text similarities.

    With L2-normalised image embeddings I and text embeddings T (B pairs) and logit scale
    t = 1 / temperature, logits = t * I @ T^T and
        loss = ( CE(logits, arange(B)) + CE(logits^T, arange(B)) ) / 2,
    image -> text and text -> image, the other B-1 items of the batch being the negatives.

    `learnable_temperature=True` makes log(t) a parameter (initialised to log(1 / temperature),
    the paper's parametrisation); t is clamped to `max_logit_scale` (100 in the paper) in the
    forward pass, so it never exceeds it (no gradient flows while it is at the cap). Otherwise t
    is a fixed buffer.

    With `gather_distributed=True` and an initialised process group, each worker scores its own
    images against all texts of the global batch and its own texts against all images
    (OpenCLIP's `local_loss=True, gather_with_grad=True`): memory O(local x global), and the mean
    of the workers' values equals the single-process loss on the concatenated batch.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        max_logit_scale: float = 100.0,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not max_logit_scale > 0:
            raise ValueError(f"max_logit_scale must be > 0, got {max_logit_scale}")
        if 1.0 / temperature > max_logit_scale:
            raise ValueError(
                f"temperature must be >= 1 / max_logit_scale = {1.0 / max_logit_scale}, got {temperature}"
            )
        self.max_logit_scale = max_logit_scale
        self.gather_distributed = gather_distributed
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)

    @property
    def logit_scale(self) -> torch.Tensor:
        """t = 1 / temperature, clamped to max_logit_scale (a scalar tensor)."""
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """image_emb, text_emb: (B, D), row i of each describing the same pair. Returns a scalar."""
        if image_emb.shape != text_emb.shape or image_emb.dim() != 2:
            raise ValueError(
                f"image_emb and text_emb must both be (B, D); got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
            )
        batch = image_emb.shape[0]
        image_emb = F.normalize(image_emb, dim=1)
        text_emb = F.normalize(text_emb, dim=1)

        if self.gather_distributed:
            all_image = distributed.gather_with_grad(image_emb)  # (W*B, D)
            all_text = distributed.gather_with_grad(text_emb)  # (W*B, D)
            offset = distributed.rank() * batch if all_image.shape[0] != batch else 0
        else:
            all_image, all_text, offset = image_emb, text_emb, 0

        scale = self.logit_scale.to(image_emb.dtype)
        logits_per_image = scale * image_emb @ all_text.T  # (B, W*B)
        logits_per_text = scale * text_emb @ all_image.T  # (B, W*B)
        targets = torch.arange(batch, device=image_emb.device) + offset
        return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2
