"""Turn an image folder or a COCO folder into webdataset shards (img2dataset layout: ``.jpg`` /
``.png`` / ``.webp`` + ``.txt``), with a progress bar. Image bytes are copied, not re-encoded.

    python -m ldm_vs_gan.data.make_shards SRC OUT [--kind auto|folder|coco] [--shard-size 1000]
        [--instance-prompt "a photo of sks dog"] [--coco-year 2014] [--coco-subset val]
        [--n 30000] [--split heldout|train]

``--kind auto``: COCO when ``SRC/annotations/`` exists, else a folder (sidecar ``.txt`` captions).
The shards can then be used with ``data=laion data.shards=OUT/shard-{000000..N}.tar``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ldm_vs_gan.data.shards import ShardWriter
from ldm_vs_gan.errors import UserError


def build_source(args):
    src = Path(args.src).expanduser()
    kind = args.kind
    if kind == "auto":
        kind = "coco" if (src / "annotations").is_dir() else "folder"
    if kind == "coco":
        from ldm_vs_gan.data.coco import CocoSource

        cfg = {
            "root": str(src),
            "year": args.coco_year,
            "subset": args.coco_subset,
            "n": args.n,
            "choice_seed": 0,
        }
        return CocoSource.from_config(cfg, args.split)
    from ldm_vs_gan.data.folder import FolderSource

    if not src.is_dir():
        raise UserError(f"SRC={str(src)!r} is not a folder")
    return FolderSource.scan(src, args.instance_prompt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="image folder (sidecar .txt captions) or COCO folder")
    ap.add_argument("out", help="output folder for shard-%%06d.tar")
    ap.add_argument("--kind", choices=["auto", "folder", "coco"], default="auto")
    ap.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    ap.add_argument("--instance-prompt", default=None, help="folder: one caption for all images")
    ap.add_argument("--coco-year", type=int, default=2014)
    ap.add_argument("--coco-subset", default="val")
    ap.add_argument("--n", type=int, default=30000, help="COCO: number of images chosen (seeded)")
    ap.add_argument(
        "--split",
        choices=["heldout", "train"],
        default="heldout",
        help="COCO: heldout = one caption per image, train = every caption",
    )
    args = ap.parse_args(argv)
    try:
        source = build_source(args)
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        missing = 0
        with ShardWriter(str(out / "shard-%06d.tar"), maxcount=args.shard_size) as w:
            for i in tqdm(range(len(source)), desc="shards", unit="img"):
                s = source.read(i)
                s.pop("__shard__", None)
                missing += "txt" not in s
                w.write(s)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(source)} samples into {len(w.paths)} shard(s) in {out}"
        + (f" ({missing} without caption: the loader will skip them as no_caption)" if missing else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
