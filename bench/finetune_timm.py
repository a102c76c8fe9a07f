"""PyTorch 2.11 + timm side of bench/finetune.ts: the same fine-tuning recipe on the same images.

timm's tf_efficientnet_lite0 with the shared ImageNet weights (renamed from the file's efficientnet_pytorch keys,
as __test__/fixtures/zoo_reference.py does), a new 10-class classifier; the body frozen (batch norm in eval) for
`freezeEpochs`, then everything trains with the body at `backboneLrScale` of the rate (batch norm statistics kept
with `batchNormStatistics: 'frozen'`), the new classifier initialized to zero; AdamW, cosine schedule with
linear warmup stepped per batch, label smoothing, random-resized crops and flips, bf16 autocast around each
forward (fp32 weights), test-time mirror averaging. Prints progress to stderr and one JSON line to stdout.

  python bench/finetune_timm.py --data <root with train/ and test/> --recipe '<json>' [--limit-test N]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "__test__", "fixtures"))
from zoo_reference import LITE0_FILE, lite0_key_map  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_folder(root, size, limit=None):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for label, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, c))):
            # Lanczos-3, the filter ConvKit's decoder (sharp) stretches with: upscaling 32-px photos with another
            # filter changes what the network sees (a model trained on Lanczos input scored 1.4 points less on
            # bilinear input).
            img = Image.open(os.path.join(root, c, f)).convert("RGB").resize((size, size), Image.LANCZOS)
            images.append(np.asarray(img))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels)
    if limit:
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:limit]
        x, y = x[keep], y[keep]
    return x, y


def normalize(x):
    return (x.float() / 255 - MEAN) / STD


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--limit-test", type=int)
    a = p.parse_args()
    r = json.loads(a.recipe)
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    start = time.time()
    size = r["size"]
    train_x, train_y = load_folder(os.path.join(a.data, "train"), size)
    test_x, test_y = load_folder(os.path.join(a.data, "test"), size, a.limit_test)
    print(f"decoded {len(train_y)} + {len(test_y)} images in {time.time() - start:.1f} s", file=sys.stderr)

    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    state = torch.load(LITE0_FILE, map_location="cpu", weights_only=True)
    ours_to_timm = {v: k for k, v in lite0_key_map(model).items()}
    model.load_state_dict({ours_to_timm[k]: v for k, v in state.items()}, strict=True)
    model.reset_classifier(10)
    # The new classifier starts at zero, as ConvKit's replaced classifier does.
    torch.nn.init.zeros_(model.get_classifier().weight)
    torch.nn.init.zeros_(model.get_classifier().bias)
    head = list(model.get_classifier().parameters())
    head_ids = {id(t) for t in head}
    body = [t for t in model.parameters() if id(t) not in head_ids]
    model = model.to(memory_format=torch.channels_last)

    steps_per_epoch = math.ceil(len(train_y) / r["batchSize"])
    total = steps_per_epoch * r["epochs"]
    opt = torch.optim.AdamW(
        [{"params": head, "lr": r["lr"]}, {"params": body, "lr": r["lr"] * r["backboneLrScale"]}],
        lr=r["lr"],
        weight_decay=r["weightDecay"],
    )
    base = [g["lr"] for g in opt.param_groups]

    def multiplier(step):
        progress = step / max(total - 1, 1)
        if progress < r["warmup"]:
            return progress / r["warmup"]
        t = (progress - r["warmup"]) / (1 - r["warmup"])
        return 0.5 * (1 + math.cos(math.pi * t))

    # The model's input: crops of the stored images (random-resized while training, centred for evaluation).
    input_size = r.get("inputSize", size)
    crop = v2.RandomResizedCrop(input_size, scale=tuple(r["resizedCrop"]), antialias=True)
    flip = v2.RandomHorizontalFlip()
    step = 0
    for epoch in range(1, r["epochs"] + 1):
        frozen = epoch <= r["freezeEpochs"]
        for t in body:
            t.requires_grad_(not frozen)
        model.train()
        if frozen or r["batchNormStatistics"] == "frozen":
            # A frozen body keeps its batch-norm statistics, as ConvKit's frozen layers do; with
            # batchNormStatistics 'frozen' they stay in eval mode while their scale and shift train.
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
            model.get_classifier().train()
        order = torch.randperm(len(train_y))
        t0 = time.time()
        loss_sum = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * r["batchSize"] : (b + 1) * r["batchSize"]]
            x = torch.stack([flip(crop(img)) for img in train_x[idx]])
            x = normalize(x).contiguous(memory_format=torch.channels_last)
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * multiplier(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=r["precision"] == "bf16"):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), train_y[idx], label_smoothing=r["labelSmoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            step += 1
        print(f"epoch {epoch}: loss {loss_sum / len(train_y):.4f} ({time.time() - t0:.1f} s)", file=sys.stderr)

    # Evaluation may take a larger centre crop than the training crops (ConvKit's evalInputSize, FixRes).
    eval_size = r.get("evalInputSize") or input_size
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_y), 200):
            x = v2.functional.center_crop(test_x[i : i + 200], [eval_size, eval_size])
            x = normalize(x).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=r["precision"] == "bf16"):
                logits = model(x).float()
                if r["tta"] == "mirror":
                    logits = 0.5 * logits + 0.5 * model(x.flip(3)).float()
            correct += (logits.argmax(1) == test_y[i : i + 200]).sum().item()
    top1 = 100 * correct / len(test_y)
    print(f"test top-1 {top1:.2f} % in {time.time() - start:.1f} s", file=sys.stderr)
    print(json.dumps({"top1": top1, "seconds": time.time() - start}))


if __name__ == "__main__":
    main()
