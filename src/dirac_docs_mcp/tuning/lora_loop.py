"""The training loop of ``tune generator``: a plain AdamW loop over LoRA parameters with
checkpoints that make a killed run resumable to the same result.

- The data order is a function of (seed, epoch) only, so a resumed run takes the same
  micro-batches at the same steps without storing the order.
- A checkpoint holds the adapter weights, the optimizer state, the RNG state (LoRA dropout)
  and the loss history; it is written as ``ckpt-<step>.tmp`` and renamed once complete,
  then older ones are removed, so a kill at any moment leaves a complete last checkpoint.
- The loss is the mean over the assistant's tokens only (``labels`` -100 elsewhere), and the
  language-model head runs only at the positions that predict them (``logits_to_keep``):
  on a RAFT prompt of a few hundred tokens with a one-sentence answer that skips most of
  the head: a fifth of SmolLM2-135M's weights (49k vocabulary), over a quarter of
  Qwen2.5-0.5B's (152k).

torch and peft are imported by the caller; this module takes their objects.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .raft_data import Example

IGNORE = -100
_PREFIX = "ckpt-"


@dataclass
class LoopSettings:
    lr: float
    steps: int  # optimizer steps in all
    batch_size: int
    grad_accum: int
    warmup_steps: int
    save_every: int
    seed: int
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup_steps``, then linear decay to zero at ``steps``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr * max(0.0, (self.steps - step) / max(1, self.steps - self.warmup_steps))


def steps_for(n_examples: int, batch_size: int, grad_accum: int, epochs: float) -> int:
    """Optimizer steps that cover ``epochs`` passes over the examples."""
    micro = math.ceil(n_examples / batch_size)
    return max(1, math.ceil(epochs * micro / grad_accum))


class DataOrder:
    """Micro-batch ``m`` of the whole run → example indices: epoch ``m // per_epoch``
    in an order drawn from (seed, epoch)."""

    def __init__(self, n_examples: int, batch_size: int, seed: int):
        self.n = n_examples
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = math.ceil(n_examples / batch_size)
        self._orders: dict[int, list[int]] = {}

    def batch(self, m: int) -> list[int]:
        epoch, k = divmod(m, self.per_epoch)
        if epoch not in self._orders:
            order = list(range(self.n))
            random.Random(self.seed * 100_003 + epoch).shuffle(order)
            self._orders = {epoch: order}  # only the current epoch's order is kept
        return self._orders[epoch][k * self.batch_size : (k + 1) * self.batch_size]


def collate(examples: Sequence[Example], pad_id: int, device: Any):
    """(input_ids, attention_mask, labels), right-padded; labels only on the answers."""
    import torch

    width = max(e.length for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        row = e.prompt_ids + e.target_ids
        pad = width - len(row)
        ids.append(row + [pad_id] * pad)
        mask.append([1] * len(row) + [0] * pad)
        labels.append([IGNORE] * len(e.prompt_ids) + e.target_ids + [IGNORE] * pad)

    def tensor(rows):
        return torch.tensor(rows, dtype=torch.long, device=device)

    return tensor(ids), tensor(mask), tensor(labels)


def token_loss(model, input_ids, attention_mask, labels):
    """(sum of the answer tokens' cross-entropy, their count); the head runs only where a
    label is predicted."""
    import torch

    keep = (labels[:, 1:] != IGNORE).any(dim=0).nonzero(as_tuple=True)[0]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits
    targets = labels[:, keep + 1]
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return loss, int((targets != IGNORE).sum())


def mean_loss(model, examples: Sequence[Example], pad_id: int, device: Any, batch: int = 4):
    """Mean answer-token loss of ``model`` over ``examples`` (no gradients)."""
    import torch

    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch):
            part = examples[start : start + batch]
            loss, n = token_loss(model, *collate(part, pad_id, device))
            total += float(loss)
            count += n
    return total / max(count, 1)


# --------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------


class Checkpoints:
    """``ckpt-<step>`` folders under a run's work folder; the last complete one wins."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def latest(self) -> Path | None:
        if not self.folder.is_dir():
            return None
        done = [
            p
            for p in self.folder.iterdir()
            if p.name.startswith(_PREFIX)
            and not p.name.endswith(".tmp")
            and (p / "state.json").is_file()
        ]
        return max(done, key=lambda p: int(p.name[len(_PREFIX) :]), default=None)

    def save(self, step: int, model, optimizer, state: dict[str, Any]) -> Path:
        import torch
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        final = self.folder / f"{_PREFIX}{step:07d}"
        temp = final.with_name(final.name + ".tmp")
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir(parents=True)
        weights = {
            k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()
        }
        save_file(weights, str(temp / "adapter.safetensors"))
        torch.save(optimizer.state_dict(), temp / "optimizer.pt")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, temp / "rng.pt")
        (temp / "state.json").write_text(json.dumps({**state, "step": step}) + "\n")  # last
        shutil.rmtree(final, ignore_errors=True)
        temp.rename(final)
        for old in self.folder.iterdir():
            if old.name.startswith(_PREFIX) and old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def load(self, path: Path, model, optimizer) -> dict[str, Any]:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(path / "adapter.safetensors")))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
        rng = torch.load(path / "rng.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return json.loads((path / "state.json").read_text())


# --------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------


def train(
    model,
    optimizer,
    examples: Sequence[Example],
    loop: LoopSettings,
    checkpoints: Checkpoints,
    pad_id: int,
    device: Any,
    start_step: int = 0,
    history: list[float] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
) -> list[float]:
    """Run optimizer steps ``start_step`` .. ``loop.steps``; returns the loss of every step
    (``history`` of the steps before ``start_step`` first). A checkpoint every
    ``loop.save_every`` steps and after the last."""
    import torch

    history = list(history or [])
    order = DataOrder(len(examples), loop.batch_size, loop.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for step in range(start_step, loop.steps):
        for group in optimizer.param_groups:
            group["lr"] = loop.lr_at(step)
        batches = [
            collate([examples[i] for i in order.batch(m)], pad_id, device)
            for m in range(step * loop.grad_accum, (step + 1) * loop.grad_accum)
        ]
        # every answer token of the step weighs the same, whichever micro-batch holds it
        tokens = sum(int((b[2][:, 1:] != IGNORE).sum()) for b in batches)
        total = 0.0
        for batch in batches:
            loss, _ = token_loss(model, *batch)
            (loss / max(tokens, 1)).backward()
            total += float(loss.detach())
        if loop.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, loop.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(total / max(tokens, 1))
        done = step + 1
        if on_step is not None:
            on_step(done, history[-1])
        if done % loop.save_every == 0 or done == loop.steps:
            extra = extra_state() if extra_state is not None else {}
            checkpoints.save(done, model, optimizer, {**extra, "history": history})
    return history
