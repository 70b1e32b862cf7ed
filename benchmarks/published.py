"""Published numbers that our benchmarks compare against, each with its source (the one place they live)."""

from __future__ import annotations

# Wang et al. 2018 Table 1 by preset (distill_paper.py).
PAPER_PRESETS = {  # Wang et al. 2018 Table 1 (MNIST, LeNet; CIFAR-10, AlexCifarNet)
    "mnist_fixed_10": 93.8,
    "mnist_fixed": 96.6,
    "mnist_random": 79.5,
    "cifar10_fixed": 54.0,
    "cifar10_random": 36.8,
}

# The paper's numbers (PAPER.md), (mean, std or None) per (row, init); only numbers the paper reports.
PAPER_TABLE1 = {
    "mnist": {
        ("distilled", "fixed"): (96.6, None),
        ("distilled", "random"): (79.5, 8.1),
        ("random-real", "random"): (68.6, 9.8),
        ("optimized-real", "random"): (73.0, 7.6),
        ("kmeans", "random"): (76.4, 9.5),
        ("average-real", "random"): (77.1, 2.7),
        ("full-data", "fixed"): (99.0, None),
        ("full-data", "random"): (99.0, None),
    },
    "fashion-mnist": {},  # the paper reports no Fashion-MNIST Table 1
}
# Numbers PAPER.md marks as recalled (≈), not confirmed by a second source.
RECALLED = {
    "distilled/fixed",
    "random-real",
    "optimized-real",
    "kmeans",
    "average-real",
    "full-data",
}

# Wang et al. 2018, Table 2 (LeNet, 100 distilled images). (mean, std or None); PAPER.md marks the
# MNIST→USPS numbers and USPS→MNIST fixed as recalled (≈).
PAPER_TABLE2: dict[str, dict[tuple[str, str], tuple[float, float | None]]] = {
    "mnist→usps": {
        ("distilled", "fixed"): (97.9, None),
        ("distilled", "random"): (95.4, 1.8),
        ("no adaptation", "random"): (90.4, 3.0),
        ("full target", "random"): (97.3, 0.3),
    },
    "usps→mnist": {
        ("distilled", "fixed"): (93.2, None),
        ("distilled", "random"): (92.7, 1.4),
        ("no adaptation", "random"): (67.5, 3.9),
    },
}

# The field's protocol: ConvNet-3 trained normally on the distilled images, test accuracy (%).
# (data set, images per class) -> {method: accuracy}. Sources: DC = Zhao, Mopuri & Bilen, ICLR 2021, Table 1;
# DSA = Zhao & Bilen, ICML 2021, Table 1; IDC = Kim et al., ICML 2022; KIP->ConvNet = Nguyen et al.,
# NeurIPS 2021; FRePo = Zhou et al., NeurIPS 2022 (its MNIST 10 figure is approximate, as recalled).
FIELD = {
    ("mnist", 10): {"DC": 97.4, "DSA": 97.8, "IDC": 98.4, "FRePo": 98.6},
    ("mnist", 1): {"DC": 91.7, "DSA": 88.7, "IDC": 94.2},
    ("fashion-mnist", 10): {"DC": 82.3, "DSA": 84.6, "KIP->ConvNet": 86.8},
    ("fashion-mnist", 1): {"DC": 70.5, "DSA": 70.6, "IDC": 81.0},
}
# What datadistill's issue #21 asks of each cell: at least DC and DSA, and the aim beyond the best published.
FIELD_BARS = {
    ("mnist", 10): (97.8, 98.8),
    ("mnist", 1): (91.7, 95.0),
    ("fashion-mnist", 10): (86.0, 88.5),
    ("fashion-mnist", 1): (72.0, 82.0),
}
