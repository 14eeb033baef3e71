"""``output_transform``/``batch_transform`` functions the bundles give MONAI's handlers and metrics."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["as_list", "positive_prob", "attention_output", "first_image", "lesion_auc_output", "loss_parts", "no_output"]


def as_list(value: Any) -> list[Any]:
    """A batch entry (string, tensor, list) as a flat Python list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)):
        return [v.item() if isinstance(v, torch.Tensor) else v for v in value]
    return [value]


def positive_prob(pred: Any) -> torch.Tensor:
    """Positive-class probability of logits: softmax's last column (sigmoid for one output)."""
    p = torch.as_tensor(pred).float()
    if p.ndim == 1:
        p = p[None]
    return torch.softmax(p, -1)[..., -1] if p.shape[-1] > 1 else torch.sigmoid(p[..., 0])


def lesion_auc_output(output: Any, id_key: str = "pred_lesion_id") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``output_transform`` for :class:`dce_monai.handlers.LesionAUC` in a MONAI evaluator.

    MONAI evaluators keep batch keys out of ``engine.state.output``; the bundle copies
    ``lesion_id`` into the output as ``id_key`` with ``CopyItemsd`` in the evaluator's
    postprocessing, and this function hands ``(probabilities, labels, lesion ids)`` on.

    Args:
        output: decollated evaluator output (list of dicts with ``pred``, ``label``, ``id_key``).
        id_key: key holding the lesion id.

    Returns:
        Positive-class probabilities, labels and lesion ids, one per patch.

    Raises:
        KeyError: an output item lacks ``id_key``.
    """
    items = output if isinstance(output, list) else [output]
    probs: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    ids: list[str] = []
    for it in items:
        if id_key not in it:
            raise KeyError(f"evaluator output lacks {id_key!r} (has {sorted(map(str, it))}); copy lesion_id into it with CopyItemsd.")
        probs.append(positive_prob(it["pred"]).reshape(-1))
        labels.append(torch.as_tensor(it["label"]).reshape(-1))
        ids.extend(str(i) for i in as_list(it[id_key]))
    return torch.cat(probs), torch.cat(labels), ids


def first_image(batch: Any) -> tuple[list[Any], list[None]]:
    """``batch_transform`` for ``TensorBoardImageHandler``: the patches' ``image``, no label image."""
    items = batch if isinstance(batch, list) else [batch]
    return [it["image"] for it in items], [None] * len(items)


def no_output(output: Any) -> list[None]:
    """``output_transform`` for ``TensorBoardImageHandler``: classification logits are not images."""
    return [None] * (len(output) if isinstance(output, list) else 1)


def attention_output(output: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image, label, mask)`` batches for ``dce_monai.handlers.AttentionInMask``.

    Reads the evaluator output after MONAI's decollation (a list of per-sample dicts, the mask
    copied into the output as ``pred_mask`` by the bundle's postprocessing) or a collated dict.

    Raises:
        KeyError: an output item without ``image``, ``label`` or ``pred_mask``.
    """
    items = output if isinstance(output, list) else [output]
    for it in items:
        missing = [k for k in ("image", "label", "pred_mask") if k not in it]
        if missing:
            raise KeyError(f"attention_output: evaluator output lacks {missing}; keys: {sorted(it)}.")
    if not isinstance(output, list):
        return output["image"], output["label"], output["pred_mask"]
    image = torch.stack([torch.as_tensor(it["image"]) for it in items])
    label = torch.stack([torch.as_tensor(it["label"]).reshape(-1)[:1] for it in items]).reshape(-1)
    mask = torch.stack([torch.as_tensor(it["pred_mask"]) for it in items])
    return image, label, mask


def loss_parts(output: Any) -> dict[str, float]:
    """Training loss and, for the mask-guided trainer, its parts ``ce`` and ``dice`` (TensorBoard tags).

    Reads the first item of MONAI's decollated output (every item carries the batch's values).
    The tag ``train_loss`` keeps the name the other variants and the seed 1 bundle use.
    """
    first = output[0] if isinstance(output, list) else output
    tags = {"loss": "train_loss", "ce": "train_ce", "dice": "train_cam_dice"}
    return {tag: float(first[k]) for k, tag in tags.items() if k in first}
