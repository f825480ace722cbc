"""Training losses. Each returns named terms; the trainer weights and sums them.

- contrastive_loss: CLIP's symmetric InfoNCE over the global batch. Features are gathered
  from every rank WITH gradient (`gather_features`), so N processes with batch b compute the
  same loss as one process with batch N*b (open_clip's `gather_with_grad` + local loss).
- sigmoid_loss: SigLIP's pairwise sigmoid loss, used instead of InfoNCE for models that
  have a learned logit bias (SigLIP via transformers or open_clip), on the same gathered batch.
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


def _global_unit_features(image_features, text_features, gather: bool):
    """L2-normalised fp32 features, gathered over ranks (with gradient) when gather is set."""
    img = F.normalize(image_features.float(), dim=-1)
    txt = F.normalize(text_features.float(), dim=-1)
    if gather:
        img, txt = gather_features(img), gather_features(txt)
    return img, txt


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE; pairs are (image i, text i). Features need not be normalised.

    With gather=True (default) and a process group, the loss of each rank is the loss of the
    whole global batch, identical on every rank.
    """
    img, txt = _global_unit_features(image_features, text_features, gather)
    logits = logit_scale.float() * img @ txt.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def sigmoid_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                 logit_bias: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    """SigLIP's loss: every (image i, text j) is a binary question "do they match?".

    -sum_ij log sigmoid(z_ij * (scale * x_i . y_j + bias)) / N, z_ij = +1 if i == j else -1,
    over the global batch of N pairs (gathered as in contrastive_loss, so every rank holds the
    whole-batch loss). Zhai et al. 2023 normalise by N, not N^2, and so does this.
    """
    img, txt = _global_unit_features(image_features, text_features, gather)
    logits = logit_scale.float() * img @ txt.t() + logit_bias.float()
    signs = 2 * torch.eye(logits.shape[0], device=logits.device) - 1
    return -F.logsigmoid(signs * logits).sum() / logits.shape[0]


def image_text_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                    logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """The pair loss a model was trained with: sigmoid when it has a logit bias, else InfoNCE."""
    if logit_bias is None:
        return contrastive_loss(image_features, text_features, logit_scale)
    return sigmoid_loss(image_features, text_features, logit_scale, logit_bias)


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

