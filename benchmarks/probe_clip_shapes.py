"""How far apart does a CLIP's text tower put the toy world's four shapes? (a diagnostic, not a test)

Both families read shape only through the frozen CLIP: the LDM cross-attends to the text tower's
token features, GALIP conditions on the pooled sentence embedding. If two shape words map to
nearly the same features, no amount of generator training can draw the right one. This prints,
for the caption "a large red <shape>", the cosine similarity between shapes of

- the token feature at the shape word (what the LDM's cross-attention reads),
- the pooled sentence embedding (GALIP's condition),

and the held-out single-object text->image retrieval top-1 of the same CLIP with per-shape errors.

    .venv/bin/python benchmarks/probe_clip_shapes.py --run RUN_DIR_OF_A_CLIP_STAGE
    .venv/bin/python benchmarks/probe_clip_shapes.py            # the toy CLIP of the default config

Measured at earlier versions of the toy CLIP (experiments/defaults/README.md has the details):
a patchify 6-block CLIP (28k images; retrieval here 0.914, all errors circle->square) had
shape-token cosine circle/square 0.99 and pooled 0.98; its LDM drew squares, circles and crosses
as blobs and GALIP's shapes were near chance. The conv stem with 4 blocks (28k images) reached
retrieval 1.000, shape-token circle/square 0.96, pooled 0.90. In the 26k default, circle and
square are 0.49 apart at the shape word after the last layer (other pairs 10.6-14.8) and already
identical after block 1, while the token embeddings (layer 0) keep them apart. Hence
clip.token_layer: 0 for the toy CLIP.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="run dir of a model=clip stage (default: the toy CLIP)")
    ap.add_argument("--n", type=int, default=1000, help="held-out samples for the retrieval check")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ldm_vs_gan.components import build_clip
    from ldm_vs_gan.stages.clip import content_key
    from ldm_vs_gan.toy import world as toy
    from ldm_vs_gan.toy.judge import load_split

    torch.set_num_threads(args.threads)
    conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
    with initialize_config_dir(config_dir=os.path.abspath(conf), version_base=None):
        cfg = compose("train", overrides=["model=ldm"])
    if args.run:
        clip_cfg = OmegaConf.create({"source": "run", "path": args.run})
    else:  # the toy CLIP: trained once by the toy preparer's step, if it is not cached yet
        from ldm_vs_gan.toy.stages import ensure_stage
        from ldm_vs_gan.toy.world import ensure_world

        ensure_world(cfg.data)
        ensure_stage("clip", cfg.clip, cfg.data)
        clip_cfg = cfg.clip
    clip = build_clip(clip_cfg, data_cfg=cfg.data)

    shapes = list(toy.SHAPES)
    caps = [f"a large red {s}" for s in shapes]
    with torch.no_grad():
        f = clip.encode_text(caps)
    pos = 4  # SOT a large red <shape> EOT: the shape word is token 4
    for name, v in (("shape-token", f.tokens[:, pos]), ("pooled", f.pooled)):
        v = F.normalize(v, dim=-1)
        sim = v @ v.t()
        print(f"{name} cosine ({', '.join(shapes)}):")
        for s, row in zip(shapes, sim.tolist()):
            print(f"  {s:>8s} " + " ".join(f"{x:5.2f}" for x in row))

    # every layer the LDM may read (clip.token_layer): shape-word token, distances
    print("shape-token distance by text layer (0 = token embeddings; circle-square | min over other pairs):")
    with torch.no_grad():
        for layer in range(clip.text_layers + 1):
            t = clip.encode_text(caps, token_layer=layer).tokens[:, pos]
            d = torch.cdist(t, t)
            others = [d[i, j].item() for i in range(4) for j in range(i + 1, 4) if {i, j} != {0, 1}]
            print(f"  layer {layer}: {d[0, 1].item():6.2f} | {min(others):6.2f}")

    images, attrs = load_split(cfg.data, "heldout")
    images, attrs = images[: args.n], attrs[: args.n]
    single = [i for i, a in enumerate(attrs) if len(a["objects"]) == 1]
    x = images[single].float() / 127.5 - 1
    with torch.no_grad():
        img = F.normalize(clip.encode_image(x), dim=-1)
        txt = F.normalize(clip.encode_text([toy.make_caption(attrs[i], 0) for i in single]).pooled, dim=-1)
    best = (txt @ img.t()).argmax(1).tolist()
    keys = [content_key(attrs[i]) for i in single]
    confusions = Counter(
        (keys[q][0][0][2], keys[j][0][0][2]) for q, j in enumerate(best) if keys[q] != keys[j]
    )
    hits = sum(keys[q] == keys[j] for q, j in enumerate(best))
    print(f"retrieval top-1 (single-object, first template, N={len(single)}): {hits / len(single):.3f}")
    print("wrong retrievals (query shape -> retrieved shape):", dict(confusions.most_common(6)))


if __name__ == "__main__":
    main()
