"""The seed's whole workflow as one process, for whole-process timings against `npm run train`: the seed's
pipeline (ImageFolder decoding every JPEG each pass, ToTensor, Normalize, DataLoader with batch 128 and shuffle),
the seed's Network, Adam 1e-3, cross-entropy; after each epoch, loss, top-1, top-5 and per-class top-1 on the
training and the test data; the best checkpoint by test loss saved with torch.save. One JSON line per epoch.

python bench/seed_run.py --root <folder with train/ and test/> --epochs N [--workers 0] [--out best.pt]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
import torchvision.transforms as transforms
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from seed_network import Network


def evaluate(model, loader, classes):
    model.eval()
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    correct = torch.zeros(classes, dtype=torch.long)
    total = torch.zeros(classes, dtype=torch.long)
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            best5 = logits.topk(5, 1).indices
            hit1 = best5[:, 0] == y
            top1 += hit1.sum().item()
            top5 += (best5 == y[:, None]).any(1).sum().item()
            correct += torch.bincount(y[hit1], minlength=classes)
            total += torch.bincount(y, minlength=classes)
            count += y.shape[0]
    model.train()
    per_class = (100.0 * correct / total.clamp(min=1)).tolist()
    return {"loss": loss_sum / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count, "per_class": per_class}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", default="seed-best.pt")
    a = p.parse_args()
    torch.manual_seed(0)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    train = ImageFolder(f"{a.root}/train", transform=transform)
    test = ImageFolder(f"{a.root}/test", transform=transform)
    loader = DataLoader(train, batch_size=128, shuffle=True, num_workers=a.workers)
    train_eval = DataLoader(train, batch_size=500, num_workers=a.workers)
    test_eval = DataLoader(test, batch_size=500, num_workers=a.workers)
    classes = len(train.classes)
    model = Network(classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    best = float("inf")
    for epoch in range(1, a.epochs + 1):
        start = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        on_train = evaluate(model, train_eval, classes)
        on_test = evaluate(model, test_eval, classes)
        if on_test["loss"] < best:
            best = on_test["loss"]
            torch.save(model.state_dict(), a.out)
        print(json.dumps({"epoch": epoch, "seconds": time.perf_counter() - start, "train": on_train, "test": on_test}), flush=True)


if __name__ == "__main__":
    main()
