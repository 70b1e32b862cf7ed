"""datadistill: dataset distillation (Wang, Zhu, Torralba, Efros 2018) in PyTorch."""

__version__ = "0.1.0"
