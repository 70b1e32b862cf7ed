"""Settings: one dataclass per command, filled from a YAML preset, then from command-line overrides.

Every field's help text is its ``metadata["help"]``; ``metadata["cli"]`` holds what the command line needs
beyond the type and default (choices, a required flag, a metavar, ``hidden`` for settings the CLI does not offer,
``help_has_default`` when the help text already states the default). ``cli.py`` builds each command's options
from these; nothing else parses arguments.

A preset is a YAML mapping whose keys are field names of the command's dataclass (``configs/*.yaml`` ship with
the package and are found by name, e.g. ``--config mnist_fixed``). An unknown key is an error that names the key
and the file. The resolved settings are written next to every run's outputs (``config.yaml``).

Where things are: ``settings`` (the field helper, defaults tables, value checks), ``distill``
(``DistillConfig``), ``commands`` (evaluate, baselines, attack, pretrain, linear), ``presets`` (YAML in and out).
A new command's dataclass goes into ``commands``; copy ``EvaluateConfig``.
"""

from datadistill.config.commands import (
    ATTACK_INITS,
    ATTACK_OUTPUTS,
    BASELINES,
    DEFAULT_LR_GRID,
    IMAGE_BASELINES,
    KNN_BASELINES,
    LINEAR_RATIOS,
    PRETRAIN_BETAS,
    PRETRAIN_METHODS,
    RANDOM_POOL_NOISE,
    START_IMAGES,
    AttackConfig,
    BaselinesConfig,
    EvaluateConfig,
    LinearConfig,
    PretrainConfig,
    check_pair,
)
from datadistill.config.distill import DistillConfig
from datadistill.config.presets import (
    PRESET_DIR,
    find_preset,
    list_presets,
    load_config,
    parse_assignments,
    save_config,
    to_dict,
)
from datadistill.config.settings import (
    AUGMENTATIONS,
    EVAL_NETWORKS,
    INIT_IMAGE_KINDS,
    INNER_OPTIMIZERS,
    PROTOCOLS,
    SCHEDULES,
    VMAP_AUGMENT_CONFLICT,
    check_device,
    check_init_noise,
    check_source_weight,
    eval_networks,
    flag,
    is_finite_number,
    positive_int,
    positive_number,
    with_overrides,
)

__all__ = [
    "ATTACK_INITS",
    "ATTACK_OUTPUTS",
    "AUGMENTATIONS",
    "BASELINES",
    "DEFAULT_LR_GRID",
    "EVAL_NETWORKS",
    "IMAGE_BASELINES",
    "INIT_IMAGE_KINDS",
    "INNER_OPTIMIZERS",
    "KNN_BASELINES",
    "LINEAR_RATIOS",
    "PRESET_DIR",
    "PRETRAIN_BETAS",
    "PRETRAIN_METHODS",
    "PROTOCOLS",
    "RANDOM_POOL_NOISE",
    "SCHEDULES",
    "START_IMAGES",
    "VMAP_AUGMENT_CONFLICT",
    "AttackConfig",
    "BaselinesConfig",
    "DistillConfig",
    "EvaluateConfig",
    "LinearConfig",
    "PretrainConfig",
    "check_device",
    "check_init_noise",
    "check_pair",
    "check_source_weight",
    "eval_networks",
    "find_preset",
    "flag",
    "is_finite_number",
    "list_presets",
    "load_config",
    "parse_assignments",
    "positive_int",
    "positive_number",
    "with_overrides",
    "save_config",
    "to_dict",
]
