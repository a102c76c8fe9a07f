"""Runs the PyPI `airbench` 0.1.8 package's own airbench94 training (`airbench.train94`) on the CPU (or, with
--device cuda, on a GPU as published), on the shared CIFAR-10 JPEG archive, as the reference the ConvKit airbench94
preset is measured against.

Install (into the venv that already has torch 2.11 / torchvision 0.26, without touching them):
    ~/.cache/convkit/pytorch-venv/bin/pip install --no-deps airbench==0.1.8
Run (the full recipe takes ~1 000 s on the project's 2-core VM; --epochs 0.2 is a ~2-minute smoke test):
    ~/.cache/convkit/pytorch-venv/bin/python bench/airbench_reference.py [--seed 0] [--epochs 9.9] [--threads 2] [--json out.json]
    python3 bench/airbench_reference.py --device cuda ...   (on a GPU: only point 1's data path and point 4 apply)

The recipe itself (network, whitening init, optimizer, schedules, Lookahead, augmentation, TTA) is airbench's
code, called unmodified through `airbench.train94(...)`. Only what cannot run on a GPU-less machine is swapped,
from outside the package, for the duration of this process:
  1. Data: `CifarLoader` normally downloads CIFAR-10 with torchvision and caches it as `cifar10/{train,test}.pt`
     (utils.py:CifarLoader.__init__). We decode the JPEG archive once into files of exactly that format
     ({'images': uint8 N×32×32×3, 'labels': int64 N, 'classes': [...]}) under --data-dir, and a thin subclass
     points airbench's hard-coded 'cifar10' path there and loads onto the CPU (`gpu='cpu'`, not cuda:0).
     The subclass also turns the loader's fp16 images (`.half() / 255`) into fp32, so the whole data path
     (normalize, reflect pad, crop, flip) runs in fp32 on the CPU; the pixel values are the same fp16-rounded
     k/255 values the GPU run sees.
     The train images are stored in a fixed shuffled order (numpy seed 0, independent of --seed): the archive is
     sorted by class, and airbench fits its whitening layer on the *first 5 000* train images
     (utils.py:train), which in the official file are a class-mixed sample, not 5 000 airplanes.
  2. Precision: `make_net94` ends with `net.half().cuda()` (lib_airbench94.py:make_net94). We call it with
     `nn.Module.half` and `nn.Module.cuda` turned into no-ops, so weights stay fp32 on the CPU (BatchNorm is fp32
     in the original too), and give the network a forward that runs under `torch.autocast('cpu', bfloat16)`:
     convolutions and the linear layer compute in bf16 (as they compute in fp16 on the GPU), and the logits are
     handed back as fp32, so the loss (fp32 under autocast's own policy too), backward's entry, the SGD step,
     Lookahead, whitening init and the data path stay fp32. (Measured earlier on this data: literal `.half()`
     weights on the CPU 89.46 %, fp32 weights under bf16 autocast 90.62 %, both with TTA.)
     The autocast context must be entered per forward, NOT once around all of train94: autocast caches the bf16
     copy of each fp32 weight until the outermost autocast context exits (any enclosing `torch.autocast`, even
     one with enabled=False, counts), so one context around training keeps computing with the initial weights.
     Measured on a 10 240-image subset, 10 steps: one context around train94 stays at chance (val 4-11 %), the
     per-forward context reaches 44.8 %, plain fp32 44.3 %.
  3. Timing: `torch.cuda.Event` / `torch.cuda.synchronize` (utils.py:train) become a wall-clock stand-in, so
     airbench's own `total_time_seconds` column (whitening + training + final TTA eval, not the per-epoch
     evals) still works.
  4. `print_training_details` is wrapped (it still prints airbench's table) to record each row for --json.
"""
import argparse
import io
import json
import math
import os
import platform
import tarfile
import time
from importlib.metadata import version

import numpy as np
import torch
from PIL import Image
from torch import nn

import airbench
import airbench.lib_airbench94 as ab94
import airbench.utils as abu

DEFAULT_ARCHIVE = "/work/shared/datasets/cifar10-jpg.tar.gz"
DEFAULT_DATA_DIR = os.path.expanduser("~/.cache/convkit/airbench-cifar10")


# ---------------------------------------------------------------------------------------------------------------
# Data: the JPEG archive decoded once into airbench's own cache format
# ---------------------------------------------------------------------------------------------------------------

def decode_archive(archive):
    """{split: (uint8 N×32×32×3 in (class, file name) order, int64 labels, classes)} from cifar10-jpg/<split>/<class>/*.jpg."""
    found = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] not in found:
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
            assert pixels.shape == (32, 32, 3), (member.name, pixels.shape)
            found[parts[1]].append((parts[2], parts[3], pixels))
    out = {}
    for split, items in found.items():
        items.sort(key=lambda t: (t[0], t[1]))
        classes = sorted({c for c, _, _ in items})
        images = np.stack([p for _, _, p in items])
        labels = np.array([classes.index(c) for c, _, _ in items], dtype=np.int64)
        out[split] = (images, labels, classes)
    return out


def prepare_data(archive, data_dir):
    """Writes data_dir/{train,test}.pt in the format CifarLoader caches torchvision's CIFAR10 in, once."""
    paths = {s: os.path.join(data_dir, f"{s}.pt") for s in ("train", "test")}
    if all(os.path.exists(p) for p in paths.values()):
        return
    os.makedirs(data_dir, exist_ok=True)
    t0 = time.perf_counter()
    decoded = decode_archive(archive)
    for split, (images, labels, classes) in decoded.items():
        if split == "train":
            # Fixed class-mixed order (see the module docstring, point 1); the test order does not matter.
            order = np.random.default_rng(0).permutation(len(labels))
            images, labels = images[order], labels[order]
        tmp = paths[split] + ".tmp"
        torch.save({"images": torch.from_numpy(np.ascontiguousarray(images)), "labels": torch.from_numpy(labels),
                    "classes": classes}, tmp)
        os.replace(tmp, paths[split])
    sizes = {s: len(v[1]) for s, v in decoded.items()}
    print(f"decoded {archive} into {data_dir} ({sizes}) in {time.perf_counter() - t0:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The patches (module docstring, points 1-4)
# ---------------------------------------------------------------------------------------------------------------

class CpuEvent:
    """Stand-in for torch.cuda.Event(enable_timing=True): record() takes the wall clock, elapsed_time() is in ms."""

    def __init__(self, enable_timing=True):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return 1e3 * (end.t - self.t)


def install_patches(data_dir, rows, on_cpu):
    original_loader = abu.CifarLoader

    class SharedCifarLoader(original_loader):
        def __init__(self, path, *args, **kwargs):
            if on_cpu:
                kwargs["gpu"] = "cpu"
            super().__init__(data_dir if path == "cifar10" else path, *args, **kwargs)
            if on_cpu:
                self.images = self.images.float()  # fp16 -> fp32 (same values), still channels_last

    # train94 builds the train loader through lib_airbench94's name, train() the test loader through utils' name.
    abu.CifarLoader = SharedCifarLoader
    ab94.CifarLoader = SharedCifarLoader

    if on_cpu:
        torch.cuda.Event = CpuEvent
        torch.cuda.synchronize = lambda device=None: None

    original_print = abu.print_training_details
    start = time.perf_counter()

    def print_training_details(variables, is_final_entry):
        row = {k: variables.get(k) for k in ("epoch", "train_loss", "train_acc", "val_acc", "tta_val_acc",
                                             "total_time_seconds")}
        row["wall_seconds"] = time.perf_counter() - start
        rows.append(row)
        original_print(variables, is_final_entry)
        print(f"    (wall {row['wall_seconds']:.1f} s since train94 started)", flush=True)

    abu.print_training_details = print_training_details


def make_net94_fp32_cpu():
    """airbench's make_net94, with its trailing `.half().cuda()` made a no-op: fp32 weights on the CPU."""
    saved = nn.Module.half, nn.Module.cuda
    nn.Module.half = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    try:
        return ab94.make_net94()
    finally:
        nn.Module.half, nn.Module.cuda = saved


def make_net94_cpu():
    """make_net94_fp32_cpu's network with a forward that computes under bf16 autocast and returns fp32 logits
    (module docstring, point 2)."""
    net = make_net94_fp32_cpu()
    forward = net.forward

    def forward_bf16(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(x).float()

    net.forward = forward_bf16
    return net


# ---------------------------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed before training (airbench sets none)")
    p.add_argument("--epochs", type=float, default=ab94.hyp["opt"]["train_epochs"],
                   help="override airbench94's 9.9 epochs (schedules are compressed accordingly; smoke tests)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda runs airbench exactly as published (fp16 weights, CUDA events); cpu applies points 1-3")
    p.add_argument("--warmup", action="store_true",
                   help="one untimed full run first, as airbench's own main does before its timed runs (for GPUs)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--archive", default=DEFAULT_ARCHIVE)
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where the decoded train.pt/test.pt are cached")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    prepare_data(a.archive, a.data_dir)
    rows = []
    on_cpu = a.device == "cpu"
    install_patches(a.data_dir, rows, on_cpu)
    make_net = make_net94_cpu if on_cpu else ab94.make_net94

    steps = math.ceil((50000 // ab94.hyp["opt"]["batch_size"]) * a.epochs)
    print(f"airbench {version('airbench')} ({os.path.dirname(airbench.__file__)}), torch {torch.__version__}, "
          f"{a.device}, {a.threads} threads, seed {a.seed}, {a.epochs} epochs = {steps} steps, "
          f"{'fp32 weights, bf16 autocast' if on_cpu else 'fp16 weights (as published)'}",
          flush=True)

    if a.warmup:
        ab94.train94(epochs=a.epochs, make_net=make_net, run="warmup")
        rows.clear()
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    ab94.train94(epochs=a.epochs, make_net=make_net)
    wall = time.perf_counter() - t0

    final = rows[-1]
    last_epoch = [r for r in rows if r["epoch"] != "eval"][-1]
    result = {
        "airbench": version("airbench"), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "seed": a.seed, "epochs": a.epochs, "train_steps": steps, "threads": a.threads, "device": a.device,
        "precision": "fp32 weights, torch.autocast('cpu', bfloat16)" if on_cpu else "fp16 weights (.half(), as published)",
        "test_acc": last_epoch["val_acc"], "test_acc_tta": final["tta_val_acc"],
        "airbench_time_seconds": final["total_time_seconds"], "wall_seconds": wall, "epochs_log": rows,
    }
    print(f"test accuracy {100 * result['test_acc']:.2f} % without TTA, {100 * result['test_acc_tta']:.2f} % with TTA; "
          f"airbench's timed total {result['airbench_time_seconds']:.1f} s "
          f"(whitening + training + TTA eval), wall {wall:.1f} s (also the per-epoch evals)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
