"""The seed's PyTorch pipeline for one training epoch: torchvision ImageFolder decoding every JPEG each epoch,
ToTensor and Normalize, a DataLoader with batch 128 and shuffle, the seed's Network, Adam 1e-3, cross-entropy.
Prints one JSON object: images per second over the epoch, and the epoch's wall time.
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True, help="a train/<class>/*.jpg folder")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    data = ImageFolder(a.root, transform=transform)
    loader = DataLoader(data, batch_size=128, shuffle=True, num_workers=a.workers)
    model = Network(len(data.classes)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    seen = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        seen += y.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": seen / seconds, "seconds": seconds, "images": seen, "workers": a.workers, "device": str(device)}))


if __name__ == "__main__":
    main()
