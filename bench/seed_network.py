"""The seed's PyTorch network, shared by the benchmark and the interop tests."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Network(nn.Module):
    """conv 3→32, pool, conv 32→64, pool, fc 64·8·8→512, fc 512→classes, as in the seed."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))
