"""Decodes `root/<split>/<class>/*` images into the raw files the GPU check reads: `<split>.u8` (uint8 N×3×H×W,
channel-first) and `<split>.labels` (int32), classes numbered in sorted folder order as ConvKit and ImageFolder do.
Used where there is Python but no Node (the GPU machines), in as many processes as there are cores.
"""
import argparse
import json
import os
from multiprocessing import Pool

import numpy as np
from PIL import Image

SIZE = (32, 32)


def decode(path):
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if rgb.size != SIZE:
            rgb = rgb.resize(SIZE, Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).tobytes()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True, help="a folder holding train/<class>/ and test/<class>/")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    summary = {}
    with Pool(os.cpu_count()) as pool:
        for split in ("train", "test"):
            base = os.path.join(a.root, split)
            classes = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
            files = [(os.path.join(base, c, f), i) for i, c in enumerate(classes) for f in sorted(os.listdir(os.path.join(base, c)))]
            pixels = pool.map(decode, [f for f, _ in files], chunksize=256)
            with open(os.path.join(a.out, f"{split}.u8"), "wb") as out:
                out.write(b"".join(pixels))
            np.asarray([label for _, label in files], dtype=np.int32).tofile(os.path.join(a.out, f"{split}.labels"))
            summary[split] = {"images": len(files), "classes": classes}
    print(json.dumps({"event": "decoded", **summary}))


if __name__ == "__main__":
    main()
