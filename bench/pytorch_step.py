"""PyTorch's own training step on the reference network, data preloaded in one tensor: the compute floor.

Reads the images ConvKit's bench wrote (uint8 N×3×32×32 and int32 labels), normalizes them once, and times
forward + cross-entropy + backward + Adam over shuffled batches, contiguous and channels_last, on the CPU or a
GPU (`--device cuda`; the data then lives on the GPU), optionally under bf16 autocast.
Prints one JSON object on stdout.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from seed_network import Network


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(x, y, layout, steps, warmup, batch, seed, bf16):
    torch.manual_seed(seed)
    model = Network(10).to(x.device)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(x.shape[0], device=x.device)
    def step(i):
        idx = order[(i * batch) % (x.shape[0] - batch):][:batch]
        xb = x[idx].contiguous(memory_format=fmt)
        opt.zero_grad()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), y[idx])
        loss.backward()
        opt.step()
        return loss.item()
    for i in range(warmup):
        step(i)
    sync(x.device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    sync(x.device)
    return steps * batch / (time.perf_counter() - start)


def time_eval(x, steps, batch, layout, bf16):
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = Network(10).to(x.device).eval().to(memory_format=fmt)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        model(x[:batch].contiguous(memory_format=fmt))
        sync(x.device)
        start = time.perf_counter()
        for i in range(steps):
            model(x[(i * batch) % (x.shape[0] - batch):][:batch].contiguous(memory_format=fmt)).argmax(1)
        sync(x.device)
    return steps * batch / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pixels", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--layouts", default="contiguous,channels_last")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="run the network under bf16 autocast")
    a = p.parse_args()
    device = torch.device(a.device)
    labels = torch.from_numpy(np.fromfile(a.labels, dtype=np.int32).astype(np.int64)).to(device)
    pixels = torch.from_numpy(np.fromfile(a.pixels, dtype=np.uint8)).view(labels.shape[0], 3, 32, 32).to(device)
    x = (pixels.float() / 255 - 0.5) / 0.5
    out = {"torch": torch.__version__, "device": str(device), "bf16": a.bf16, "threads": torch.get_num_threads(), "train": {}, "eval": {}}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    for layout in a.layouts.split(","):
        out["train"][layout] = time_steps(x, labels, layout, a.steps, a.warmup, a.batch, seed=0, bf16=a.bf16)
        out["eval"][layout] = time_eval(x, max(4, a.steps // 4), a.eval_batch, layout, a.bf16)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
