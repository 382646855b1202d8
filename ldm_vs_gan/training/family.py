"""The contract between the training loop and a model family (docs/CONTRACTS.md "Families").

A family (LDM, GALIP, and the two pre-training stages VAE and CLIP, plus the tiny test family)
subclasses :class:`Family`. It declares its **phases** in order; the loop runs every phase once
per step (GALIP: ``discriminator`` then ``generator``). Each phase names the trainable networks
it updates and its optimizer settings. The family computes ``loss(phase, batch, ctx)``; the loop
owns everything else: DDP wrapping, autocast, GradScaler, accumulation, clipping, warm-up, EMA,
checkpoints, logging.

Networks are addressed by name. ``ctx.nets[name]`` is what the family must call in ``loss``:
for the networks of the phase being trained the loop puts the DDP-wrapped module there (so
gradients are averaged across ranks), for every other network the plain module. A family never
stores or calls a DDP wrapper itself, and never calls ``.backward()``.

Work shared between the phases of one step (GALIP's fake batch, made in the discriminator phase
and trained through in the generator phase) goes through ``ctx.scratch``, a dict the loop creates
for each step and micro-batch and drops after the step, never through family attributes; the loop
says in ``ctx.share_across_phases`` whether a graph may be carried over, and turns on
``requires_grad`` for the networks a phase declares in ``Phase.records_graph_for``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ldm_vs_gan.data.batch import Batch


@dataclass
class OptimizerSpec:
    """Optimizer settings of one phase (built by the loop, so all families share one code path).

    name: ``adam`` | ``adamw``; lr: peak learning rate (warm-up is the trainer's);
    betas/eps/weight_decay as in ``torch.optim``; grad_clip: max global grad norm or None.
    """

    name: str = "adamw"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None


@dataclass
class Phase:
    """One optimizer step per training step on ``networks``.

    records_graph_for: networks this phase does not update but whose autograd graph it records for
        a later phase of the same step (GALIP's discriminator phase makes the generator phase's
        fake batch). When the loop allows sharing (``StepContext.share_across_phases``) it turns
        their ``requires_grad`` on during this phase; the phase's loss must reach them only through
        detached tensors, so its backward leaves no gradient in them. Without sharing they stay
        frozen and the later phase makes its own forward.
    """

    name: str  # e.g. "denoiser", "discriminator", "generator"
    networks: list[str]  # names in Family.networks() whose parameters this phase updates
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    records_graph_for: list[str] = field(default_factory=list)


@dataclass
class StepContext:
    """What the loop passes to ``Family.loss`` besides the batch.

    nets: name -> module to call (DDP-wrapped for the phase's own networks).
    grad_scale: the current GradScaler scale of this phase (1.0 without fp16). A family that takes
        gradients inside its loss (GALIP's MA-GP) scales the outputs by it before
        ``torch.autograd.grad`` and divides the gradients by it afterwards (PyTorch AMP recipe for
        gradient penalties), so fp16 does not underflow and the penalty is unscaled correctly.
    images_seen: global images seen before this step (for schedules inside a family, if any).
    scratch: per-step, per-micro-batch space owned by the loop: every phase of a step gets the
        same dict for the same micro-batch (and a different one for each micro-batch), and it is
        dropped after the step. Phases pass work forward through it (GALIP's fake batch, the
        sentence embeddings); nothing in it outlives the step.
    share_across_phases: whether a later phase may reuse an autograd graph an earlier phase put in
        ``scratch``. False under DDP (the later phase must run its own forward through its DDP
        wrapper: the reducer prepares for backward in forward) and with accumulation (holding
        every micro-batch's graph until the later phase would undo the memory accumulation saves).

    During a phase only that phase's networks (plus its ``records_graph_for`` ones when sharing)
    have ``requires_grad`` on (gradients still flow through the others to their inputs). ``loss``
    is called once per micro-batch under autocast; the loop casts it to fp32.
    """

    nets: dict[str, nn.Module]
    grad_scale: float = 1.0
    images_seen: int = 0
    scratch: dict[str, Any] = field(default_factory=dict)
    share_across_phases: bool = True


class Family(nn.Module):
    """Base class. Subclasses build their networks and frozen components in ``__init__``.

    Required: :meth:`phases`, :meth:`networks`, :meth:`loss`. Generative families also implement
    :meth:`generate`; stages with other previews (VAE reconstructions) override :meth:`preview`.
    Frozen components are attributes (so ``.to(device)`` moves them) but never appear in
    :meth:`networks`; they are put in eval mode with ``requires_grad_(False)``.
    """

    #: name of the network whose EMA is kept and used for sampling (None: no EMA, e.g. stages)
    ema_network: str | None = None
    #: True for families whose ``generate`` makes images from captions (LDM, GALIP): the loop then
    #: also runs the metrics room's ``quick_eval`` at the eval interval.
    generative: bool = False
    #: the top-level config nodes of the frozen components ``from_config`` builds (``clip``,
    #: ``autoencoder``): the plug-ins' preparers make any first-use weights of these, and no others
    components: tuple[str, ...] = ()
    #: True for families that train from precomputed shards (``data.precomputed``: latents and
    #: text features instead of images); the loop refuses such data for the others
    reads_precomputed: bool = False

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        """Trainable networks by name (these, and only these, are checkpointed and DDP-wrapped)."""
        raise NotImplementedError

    def loss(self, phase: str, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss of ``phase`` on ``batch`` and a dict of scalars to log (floats or 0-d tensors)."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, captions: list[str], seeds: list[int] | torch.Tensor, **sampling: Any) -> torch.Tensor:
        """uint8 images (B, 3, H, W), one per caption; image i depends only on (captions[i],
        seeds[i], sampling) so any single image can be regenerated alone. Seeds are int64."""
        raise NotImplementedError(f"{type(self).__name__} does not generate images")

    @torch.no_grad()
    def preview(self, batch: Batch, seeds: list[int]) -> torch.Tensor:
        """uint8 images for the sample grid of the fixed panel (held-out ``batch``, fixed seeds).
        Default: generate from the panel's captions."""
        return self.generate(batch.captions, seeds)

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict[str, float]:
        """Quick evaluation on held-out batches at the trainer's eval interval (e.g. CLIP
        retrieval accuracy, VAE PSNR, toy-judge fidelity). Default: nothing."""
        return {}

    def sampling_defaults(self) -> dict[str, Any]:
        """The sampling settings ``generate`` uses when given none (recorded in provenance)."""
        return {}

    def flops_per_image(self) -> float | None:
        """Optional analytic estimate of training FLOPs per image; the loop measures one otherwise."""
        return None
