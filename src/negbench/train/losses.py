"""Training losses. Each returns named terms; the trainer weights and sums them.

- contrastive_loss: CLIP's symmetric InfoNCE over the global batch. Features are gathered
  from every rank WITH gradient (`gather_features`), so N processes with batch b compute the
  same loss as one process with batch N*b (open_clip's `gather_with_grad` + local loss).
- mcq_loss: cross-entropy over the 4 options of each question, logits =
  logit_scale * normalised(image) . normalised(option) (the paper's MCQ loss).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (B, D) from all ranks in rank order, keeping gradient to the local part.

    torch.distributed.nn.all_gather backpropagates: each rank gets the gradient that the
    full loss sends to its own features (summed over ranks' copies of the loss).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import torch.distributed.nn as dist_nn

    return torch.cat(dist_nn.all_gather(x), dim=0)


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE; pairs are (image i, text i). Features need not be normalised.

    With gather=True (default) and a process group, the loss of each rank is the loss of the
    whole global batch, identical on every rank.
    """
    img = F.normalize(image_features.float(), dim=-1)
    txt = F.normalize(text_features.float(), dim=-1)
    if gather:
        img, txt = gather_features(img), gather_features(txt)
    logits = logit_scale.float() * img @ txt.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def mcq_loss(image_features: torch.Tensor, option_features: torch.Tensor, answers: torch.Tensor,
             logit_scale: torch.Tensor) -> torch.Tensor:
    """image_features (B, D), option_features (B, K, D), answers (B,) in 0..K-1 -> mean CE.

    Local to each rank (questions are independent); DDP averages gradients over ranks,
    which equals the loss of the global batch when ranks hold equal-sized batches.
    """
    img = F.normalize(image_features.float(), dim=-1)
    opt = F.normalize(option_features.float(), dim=-1)
    logits = logit_scale.float() * torch.einsum("bd,bkd->bk", img, opt)
    return F.cross_entropy(logits, answers)


LOSS_TERMS = ("contrastive_loss", "mcq_loss")


def negation_losses(*, logit_scale, image_features=None, text_features=None,
                    mcq_image_features=None, mcq_option_features=None, mcq_answers=None) -> dict:
    """The named terms for whichever batches are given."""
    out = {}
    if image_features is not None:
        out["contrastive_loss"] = contrastive_loss(image_features, text_features, logit_scale)
    if mcq_image_features is not None:
        out["mcq_loss"] = mcq_loss(mcq_image_features, mcq_option_features, mcq_answers, logit_scale)
    return out
