"""Top-level ATen operators per training step of airbench94's own code (PyPI airbench 0.1.8), counted on the CPU
with torch.profiler: on a GPU each is about one kernel launch, so this is the launch cost ConvKit's preset is
compared with (`cargo run --release -p convkit-core --example step_ops -- <airbench94 spec.json> 1024 bf16`).

The step is airbench's training loop body (utils.py:train): forward, label-smoothed summed loss,
zero_grad(set_to_none=True), backward, SGD step, scheduler step, Lookahead every 5 steps. The optimizer runs
torch.optim.SGD's multi-tensor (foreach) path, its default on CUDA (on the CPU it would default to the per-tensor
loop). The network is make_net94 with `.half().cuda()` skipped, fp32 or under bf16 autocast as on the CPU bench
(bench/airbench_reference.py). Data augmentation is left out: airbench augments a whole epoch at once, not per step.

    ~/.cache/convkit/pytorch-venv/bin/python bench/airbench_step_ops.py [--batch 1024] [--bf16]
"""
import argparse
import os
import sys

import torch
from torch import nn

import airbench.lib_airbench94 as ab94
import airbench.utils as abu

sys.path.insert(0, os.path.dirname(__file__))
from airbench_reference import make_net94_cpu, make_net94_fp32_cpu  # noqa: E402


def top_level_aten(events):
    """Events named aten::… with no aten::… ancestor: operators dispatched at the top level."""
    count = 0
    for e in events:
        if not e.name.startswith("aten::"):
            continue
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        count += parent is None
    return count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = make_net94_cpu() if args.bf16 else make_net94_fp32_cpu()
    hyp = ab94.hyp["opt"]
    momentum, batch = hyp["momentum"], args.batch
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = hyp["lr"] / kilostep_scale
    wd = hyp["weight_decay"] * batch / kilostep_scale
    lr_biases = lr * hyp["bias_scaler"]
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    other = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD(
        [dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases), dict(params=other, lr=lr, weight_decay=wd / lr)],
        momentum=momentum,
        nesterov=True,
        foreach=True,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    lookahead = abu.LookaheadState(model)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp["label_smoothing"], reduction="none")
    inputs = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.arange(batch) % 10
    model.train()
    counts = []
    for step in range(1, args.steps + 1):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            outputs = model(inputs)
            loss = loss_fn(outputs, labels).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 5 == 0:
                lookahead.update(model, decay=0.5)
        counts.append(top_level_aten(prof.events()))
    tensors = sum(1 for p in model.parameters() if p.requires_grad)
    mean = sum(counts[1:]) / (len(counts) - 1)
    print(f"airbench94 {'bf16 autocast' if args.bf16 else 'fp32'}, batch {batch}, {tensors} trainable tensors: "
          f"top-level operators per step {counts} (mean of steps 2-{args.steps}: {mean:.1f})")


if __name__ == "__main__":
    main()
