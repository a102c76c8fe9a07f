"""PyTorch's side of bench/multi-label.ts: torchvision's resnet18 trained on the same mosaic CSV with BCEWithLogitsLoss
and the same recipe as the ConvKit run beside it (Adam, constant rate, no augmentation, pixels scaled to [-1, 1], fp32),
then scored as ConvKit scores it: mAP over the test images, and macro-/micro-F1 and exact match at per-class thresholds
chosen on the validation rows to maximise each class's F1 (the midpoint below the best cut; a class is predicted
where its probability reaches its threshold).

  multi_label_torch.py <labels.csv> <epochs> <batch size> <lr> <seed> [<same-start folder>]

With a same-start folder (bench/multi-label.ts --same-start), the network starts from ConvKit's initial weights
(init.safetensors) and trains on ConvKit's order of images (order.json: each epoch's training-row indices), and the
output adds each step's loss (stepLosses).

Prints one JSON object: mAP, macroF1, microF1, exactMatch (percent), seconds (training and scoring).
"""
import csv
import json
import os
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, f1_score


def read(csv_file):
    root = os.path.dirname(csv_file)
    with open(csv_file, newline="") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({label for r in rows for label in r["labels"].split()})
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for r in rows:
        image = np.asarray(Image.open(os.path.join(root, r["file"])).convert("RGB")).transpose(2, 0, 1)
        target = np.zeros(len(classes), dtype=np.float32)
        for label in r["labels"].split():
            target[index[label]] = 1
        x, y = splits.setdefault(r["split"], ([], []))
        x.append(image)
        y.append(target)
    return classes, {s: (torch.from_numpy(np.stack(x)), torch.from_numpy(np.stack(y))) for s, (x, y) in splits.items()}


def normalized(x):
    return (x.float() / 255 - 0.5) / 0.5


def best_threshold(scores, truth):
    """ConvKit's bestThreshold: the F1-maximising cut over distinct scores, the midpoint to the next score down."""
    positives = truth.sum()
    if positives == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    tp, best, at = 0, -1.0, 0
    for j, i in enumerate(order):
        tp += truth[i]
        if j + 1 < len(order) and scores[order[j + 1]] == scores[i]:
            continue
        f1 = 2 * tp / (j + 1 + positives)
        if f1 > best:
            best, at = f1, j
    lowest = scores[order[at]]
    return lowest if at + 1 == len(order) else (lowest + scores[order[at + 1]]) / 2


def main(csv_file, epochs, batch, lr, seed, same_start=None):
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    classes, data = read(csv_file)
    model = torchvision.models.resnet18(num_classes=len(classes))
    orders = None
    if same_start:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(os.path.join(same_start, "init.safetensors")), strict=True)
        with open(os.path.join(same_start, "order.json")) as f:
            orders = [torch.tensor(o) for o in json.load(f)]
    step_losses = []
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x, y = data["train"]
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = orders[epoch] if orders else torch.randperm(len(x))
        for b in range(0, len(x), batch):
            pick = order[b : b + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(normalized(x[pick])), y[pick])
            loss.backward()
            optimizer.step()
            if orders:
                step_losses.append(loss.item())
    model.eval()

    def probabilities(split):
        xs, ys = data[split]
        with torch.no_grad():
            p = torch.cat([torch.sigmoid(model(normalized(xs[b : b + 500]))) for b in range(0, len(xs), 500)])
        return p.numpy(), ys.numpy().astype(int)

    pv, yv = probabilities("valid")
    thresholds = np.array([best_threshold(pv[:, c], yv[:, c]) for c in range(len(classes))])
    pt, yt = probabilities("test")
    pred = (pt >= thresholds).astype(int)
    print(
        json.dumps(
            {
                "mAP": 100 * average_precision_score(yt, pt, average="macro"),
                "macroF1": 100 * f1_score(yt, pred, average="macro", zero_division=0),
                "microF1": 100 * f1_score(yt, pred, average="micro", zero_division=0),
                "exactMatch": 100 * accuracy_score(yt, pred),
                "seconds": time.perf_counter() - start,
                **({"stepLosses": step_losses} if orders else {}),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:7])
