"""Stage ``model=clip``: contrastive pre-training of a small open_clip model on any captioned data.

The offline counterpart of a pretrained CLIP (docs/ARCHITECTURE.md "Stages"): the same open_clip
``CLIP`` class and shipped BPE tokenizer, a small architecture (``configs/model/clip.yaml``),
trained with the symmetric InfoNCE loss of CLIP (Radford et al. 2021, Fig. 3 pseudo-code).

One change for a world with few distinct captions: a batch holds many samples with the *same*
content (32 single-object combinations), so the one-hot targets of plain CLIP would call
identical pairs negatives. Where the batch carries the toy attributes, every pair with equal
content (shapes, colours, sizes, relation; positions are free) is a positive and the target
distribution spreads evenly over them (as supervised-contrastive losses do); without attributes
(LAION) the targets are plain one-hot. The loss is per rank (no feature gathering across ranks).

``evaluate`` logs held-out zero-shot text->image retrieval top-1 (a retrieved image counts when
its content equals the caption's) on single- and two-object captions; on data without attributes
it counts by caption text (:func:`text_retrieval`), which stays meaningful when captions repeat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ldm_vs_gan.components.clip import CLIP_MEAN, CLIP_STD, bpe_tokenizer, build_open_clip
from ldm_vs_gan.components.config import read_whole_arch
from ldm_vs_gan.components.sources import clip_arch
from ldm_vs_gan.data.batch import Batch
from ldm_vs_gan.stages.config import CLIPStageConfig
from ldm_vs_gan.training.family import Family, OptimizerSpec, Phase, StepContext

# log(100): CLIP clamps its learned temperature so logits never exceed 100 (Radford et al. 2021, s2.5).
MAX_LOGIT_SCALE = 100.0


def content_key(attrs: dict | None):
    """What a toy caption says about an image: objects' (size, colour, shape) in canonical order
    and the relation; positions excluded (captions do not state them). None without attributes."""
    if not attrs:
        return None
    objs = tuple((o.get("size"), o.get("color"), o.get("shape")) for o in attrs.get("objects", []))
    return objs, attrs.get("relation")


def positives(batch: Batch, device) -> torch.Tensor:
    """(B, B) bool: pairs with the same content (identity where attributes are missing)."""
    keys = [content_key(a) for a in batch.attributes] if batch.attributes else [None] * len(batch)
    n = len(batch)
    eye = torch.eye(n, dtype=torch.bool, device=device)
    if any(k is None for k in keys):
        return eye
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    code = torch.tensor([ids[k] for k in keys], device=device)
    return (code[:, None] == code[None, :]) | eye


class CLIPStage(Family):
    """Trainable open_clip ``CLIP`` (network ``clip``); one phase ``clip``."""

    ema_network = None
    generative = False

    def __init__(
        self,
        arch: dict,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        warm_scale: float | None = None,
        grad_clip: float | None = 1.0,
        betas=(0.9, 0.98),
        ema: bool = False,
    ):
        super().__init__()
        self.arch = arch
        # A short constant-LR run ends at noisy weights: an EMA of the weights (a Polyak tail
        # average, which the engine's EMA warm-up d_n = (1+n)/(10+n) gives on a short run)
        # smooths the end point, with or without the trainer's LR decay. weights/ and the
        # evaluation then use the averaged network.
        self.ema_network = "clip" if ema else None
        self.clip = build_open_clip(arch)
        if warm_scale is not None:  # initial temperature 1/warm_scale (CLIP: 1/0.07)
            with torch.no_grad():
                self.clip.logit_scale.fill_(float(torch.tensor(warm_scale).log()))
        self.tokenizer = bpe_tokenizer(int(arch["text_cfg"]["context_length"]))
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.opt = OptimizerSpec(
            name="adamw",
            lr=float(lr),
            betas=tuple(betas),
            eps=1e-6,
            weight_decay=float(weight_decay),
            grad_clip=grad_clip,
        )

    @classmethod
    def from_config(cls, cfg) -> CLIPStage:
        m = read_whole_arch(CLIPStageConfig, cfg.model, "model")
        arch = clip_arch(m.arch, int(cfg.data.resolution))
        return cls(
            arch,
            lr=float(m.lr),
            weight_decay=float(m.weight_decay),
            warm_scale=m.init_logit_scale,
            grad_clip=m.grad_clip,
            betas=tuple(m.betas),
            ema=bool(m.ema),
        )

    def phases(self) -> list[Phase]:
        return [Phase("clip", ["clip"], self.opt)]

    def networks(self):
        return {"clip": self.clip}

    # --- helpers ---------------------------------------------------------------------------
    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """[-1,1] -> CLIP input (the toy tower's size is the data resolution: no resize)."""
        x = (images + 1.0) * 0.5
        size = tuple(self.clip.visual.image_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def _tokens(self, captions: list[str], device) -> torch.Tensor:
        return self.tokenizer(list(captions)).to(device)

    # --- training --------------------------------------------------------------------------
    def loss(self, phase: str, batch: Batch, ctx: StepContext):
        net = ctx.nets["clip"]
        dev = batch.images.device
        # open_clip CLIP.forward: L2-normalised image (B,E) and text (B,E) features, exp(logit_scale).
        img, txt, scale = net(self._pixels(batch.images), self._tokens(batch.captions, dev))
        scale = scale.clamp(max=MAX_LOGIT_SCALE)
        logits = scale * img @ txt.t()  # (B_img, B_txt)
        pos = positives(batch, dev).float()
        target = pos / pos.sum(1, keepdim=True)  # symmetric: pos is symmetric
        loss_i = torch.sum(-target * F.log_softmax(logits, dim=1), dim=1).mean()
        loss_t = torch.sum(-target * F.log_softmax(logits.t(), dim=1), dim=1).mean()
        loss = 0.5 * (loss_i + loss_t)
        with torch.no_grad():
            # in-batch top-1 (text->image), counting content-equal images as correct
            acc = pos[torch.arange(len(batch), device=dev), logits.t().argmax(1)].mean()
        return loss, {"loss": loss.detach(), "acc": acc, "logit_scale": scale.detach()}

    # --- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, images: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised image (N,E) and text (N,E) features."""
        img = F.normalize(self.clip.encode_image(self._pixels(images)), dim=-1)
        txt = F.normalize(self.clip.encode_text(self._tokens(captions, images.device)), dim=-1)
        return img, txt

    @torch.no_grad()
    def evaluate(self, batches: list[Batch]) -> dict[str, float]:
        b = Batch.cat(batches)
        img, txt = self.embed(b.images, b.captions)
        keys = [content_key(a) for a in b.attributes] if b.attributes else [None] * len(b)
        out: dict[str, float] = {}
        for name, n_obj in (("single", 1), ("two", 2)):
            idx = [i for i, k in enumerate(keys) if k is not None and len(k[0]) == n_obj]
            if len(idx) < 2:
                continue
            sim = txt[idx] @ img[idx].t()  # (Nq, Ncand): query caption i vs candidate image j
            best = sim.argmax(1).tolist()
            hit = [keys[idx[q]] == keys[idx[j]] for q, j in enumerate(best)]
            out[f"retrieval_top1_{name}"] = sum(hit) / len(hit)
            out[f"retrieval_n_{name}"] = float(len(idx))
        if not out and len(b) >= 2:  # no attributes (real data): by caption text
            out.update(text_retrieval(img, txt, b.captions))
        return out

    @torch.no_grad()
    def preview(self, batch: Batch, seeds: list[int]) -> torch.Tensor:
        """For each panel caption, the panel image the model retrieves for it (uint8)."""
        img, txt = self.embed(batch.images, batch.captions)
        best = (txt @ img.t()).argmax(1)
        return ((batch.images[best].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def text_retrieval(img: torch.Tensor, txt: torch.Tensor, captions: list[str]) -> dict[str, float]:
    """Retrieval where captions may repeat (class-name captions, templates).

    ``retrieval_top1_exact``: caption i retrieves image i itself (meaningless with repeats: every
    image of the same caption is as right). ``retrieval_top1_text``: each distinct caption retrieves
    an image whose caption is that text. ``zeroshot_top1``: each image picks, among the distinct
    captions, its own (CLIP's zero-shot classification, Radford et al. 2021, s3.1)."""
    exact = (txt @ img.t()).argmax(1) == torch.arange(len(captions), device=img.device)
    distinct = sorted(set(captions))
    first = [captions.index(c) for c in distinct]  # one text embedding per distinct caption
    sim = txt[first] @ img.t()  # (distinct, images)
    best_image = sim.argmax(1).tolist()
    best_text = sim.argmax(0).tolist()
    return {
        "retrieval_top1_exact": exact.float().mean().item(),
        "retrieval_top1_text": sum(captions[j] == c for c, j in zip(distinct, best_image)) / len(distinct),
        "zeroshot_top1": sum(distinct[k] == c for c, k in zip(captions, best_text)) / len(captions),
        "distinct_captions": float(len(distinct)),
    }
