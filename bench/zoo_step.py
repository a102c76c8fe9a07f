"""PyTorch's own training step for zoo networks at fine-tuning size, the floor bench/zoo-step.ts compares with.

A torchvision network by its name, or timm's tf_efficientnet_lite0 (10 classes), channels_last, AdamW, mean cross-entropy,
optionally under bf16 autocast around the forward (fp32 weights), on uint8 images ConvKit's bench wrote
(N×3×H×W) normalized once, on the CPU or (--device cuda) a GPU. Prints one JSON object: images per second.
"""
import argparse
import json
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
import torchvision


def build(arch):
    if arch == "efficientnet_lite0":
        return timm.create_model("tf_efficientnet_lite0", num_classes=10)
    if not hasattr(torchvision.models, arch):
        raise SystemExit(f"unknown arch {arch}")
    return getattr(torchvision.models, arch)(num_classes=10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True)
    p.add_argument("--pixels", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--single-tensor", action="store_true",
                   help="foreach=False: the per-tensor path ConvKit computes (PyTorch's default on CUDA is foreach)")
    a = p.parse_args()
    labels = torch.from_numpy(np.fromfile(a.labels, dtype=np.int32).astype(np.int64))
    pixels = torch.from_numpy(np.fromfile(a.pixels, dtype=np.uint8)).view(labels.shape[0], 3, a.size, a.size)
    device = torch.device(a.device)
    x = ((pixels.float() / 255 - 0.5) / 0.5).contiguous(memory_format=torch.channels_last).to(device)
    labels = labels.to(device)
    torch.manual_seed(0)
    model = build(a.arch).to(device, memory_format=torch.channels_last).train()
    # --optimizer sgd is plain SGD, no momentum: the difference to adamw is the optimizer's share of a step.
    foreach = False if a.single_tensor else None
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=foreach)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, foreach=foreach)

    def step(i):
        s = (i * a.batch) % (x.shape[0] - a.batch + 1)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(x[s : s + a.batch])
        F.cross_entropy(logits.float(), labels[s : s + a.batch]).backward()
        opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(a.warmup):
        step(i)
    sync()
    start = time.perf_counter()
    for i in range(a.steps):
        step(a.warmup + i)
    sync()
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "images_per_second": a.steps * a.batch / (time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
