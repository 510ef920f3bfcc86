"""SimCLR's stochastic views, batched with kornia (per-sample random parameters, CPU or GPU)."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


class SimCLRViews(nn.Module):
    """Images (B, C, H, W) uint8 or [0, 1] float -> two independently augmented views, each
    (B, C, size, size) float in [0, 1].

    Random resized crop, horizontal flip, colour jitter and random grayscale (Chen et al. 2020,
    appendix A). Saturation, hue and grayscale only apply to RGB; grayscale inputs get brightness
    and contrast jitter.
    """

    def __init__(
        self,
        size: int,
        channels: int,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        flip_p: float = 0.5,
        jitter_strength: float = 0.5,
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
    ) -> None:
        super().__init__()
        s = jitter_strength
        # "resample" crops the whole batch with one batched affine warp; the default "slice" mode
        # crops sample by sample (one small resize each), which starves a GPU and is slower on CPU.
        steps: list[nn.Module] = [K.RandomResizedCrop((size, size), scale=crop_scale, cropping_mode="resample")]
        if flip_p > 0:
            steps.append(K.RandomHorizontalFlip(p=flip_p))
        if channels == 3:
            steps.append(K.ColorJiggle(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=jitter_p))
            if gray_p > 0:
                steps.append(K.RandomGrayscale(p=gray_p))
        elif channels == 1:
            steps.append(K.ColorJiggle(0.8 * s, 0.8 * s, 0.0, 0.0, p=jitter_p))
        else:
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.augment = nn.Sequential(*steps)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return self.augment(images), self.augment(images)
