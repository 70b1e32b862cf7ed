"""Experiments built on the library, one job per file, each behind a ``datadistill`` command.

- ``baselines``: real-image baselines for a budget (Table 1);
- ``pretrain``: pools of pre-trained networks, the p(θ_0) of adaptation (Table 2);
- ``attack``: targeted poisoning (§3.5), with ``attack_report`` (its metrics), ``attack_baselines`` (real
  images with the same budget) and ``attack_heatmap`` (every pair of classes);
- ``linear``: the linear case (§3.3) and its lower bound.
"""
