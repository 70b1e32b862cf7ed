"""Published numbers that our benchmarks compare against, each with its source (the one place they live)."""

from __future__ import annotations

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
