"""What a distillation run records about itself: its inner recipe and the result's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datadistill.checkpoint import DistillState
from datadistill.config import DistillConfig
from datadistill.data import ImageDataset
from datadistill.evaluate import EvalResult
from datadistill.minibatch_unroll import Recipe
from datadistill.models.user import factory_root
from datadistill.setting import Setting


def inner_recipe(cfg: DistillConfig) -> Recipe | None:
    """The dataset protocol's inner training from the config (None for the replay protocol)."""
    if cfg.protocol != "dataset":
        return None
    return Recipe(
        optimizer=cfg.inner_optimizer,
        updates=cfg.unroll,
        batch_size=cfg.inner_batch,
        augment=cfg.inner_augment,
    )


def recipe_manifest(recipe: Recipe | None, cfg: DistillConfig) -> dict[str, Any] | None:
    """The manifest's record of how the set trains a network in distillation (dataset protocol)."""
    if recipe is None:
        return None
    return {
        "optimizer": recipe.optimizer,
        "updates": recipe.updates,
        "batch_size": recipe.batch_size,
        "momentum": recipe.momentum if recipe.optimizer == "momentum" else None,
        "betas": list(recipe.betas) if recipe.optimizer == "adam" else None,
        "window": cfg.window,
        "learned_lr": cfg.learn_lr,
        "augment": recipe.augment,
    }


def run_manifest(
    cfg: DistillConfig,
    train: ImageDataset,
    setting: Setting,
    state: DistillState,
    result: EvalResult,
    timing: dict[str, float],
    *,
    recipe: Recipe | None,
    processes: int,
    out: Path,
) -> dict[str, Any]:
    """What the distilled set records about how it was made (``manifest.json``).

    ``train`` is the part distilled from, ``setting`` the run's network and inits, ``timing`` the session's
    seconds (``distill_seconds_this_session``, ``seconds_per_iteration``, …), ``processes`` the ranks,
    ``state.iterations_before`` those of the set ``--init-images FOLDER`` went on from.
    """
    return {
        # a registered name, or the resolved path of the user's data ("python" for train= data)
        "dataset": (train.source or {}).get("path") or cfg.dataset,
        # where the data came from and its content hash, so evaluate can find and check it (None: registered)
        "data_source": train.source,
        "model": setting.model_spec,
        "extra_models": list(cfg.extra_models),  # also distilled for (dataset protocol)
        # the folder the model's factory module was imported from (module:factory specs only)
        "model_root": factory_root(setting.model_spec),
        # {name: shape} of its parameters and buffers, so evaluate refuses an edited factory (factories only)
        "model_signature": state.model_signatures.get(setting.model_spec),
        "init": cfg.init,
        "init_scheme": cfg.init_scheme,
        "init_seed": cfg.seed,
        # absolute, so that `evaluate` finds the pool from any working directory
        "pretrained": str(Path(cfg.pretrained).resolve()) if cfg.pretrained else None,
        "objective": cfg.objective,
        "source_class": cfg.source_class,
        "target_class": cfg.target_class,
        "images_per_class": cfg.images_per_class,
        # multi-formation: each stored image decodes to formation² training images (`formation.decode`)
        "formation": cfg.formation,
        "num_classes": train.num_classes,
        "class_names": list(train.class_names),
        "mean": list(train.mean),
        "std": list(train.std),
        "resize": cfg.resize,
        "pad": cfg.pad,
        "channels": cfg.channels,
        "seed": cfg.seed,
        "iterations": state.iteration,
        # noise | real | the folder of the set it went on from, and that set's iterations (all of them)
        "init_images": cfg.init_images,
        "iterations_before": state.iterations_before,
        "init_noise": cfg.init_noise,
        "source_weight": cfg.source_weight,
        # with --val-size: which iterate is the result, and its accuracy on the held-out training images
        "val_size": cfg.val_size,
        "selected_iteration": state.best["iteration"] if state.best else state.iteration,
        "val_accuracy": state.best["val_accuracy"] if state.best else None,
        "meta_grad": cfg.meta_grad,
        # what the set is distilled for; `evaluate` uses it by default
        "protocol": cfg.protocol,
        "recipe": recipe_manifest(recipe, cfg),
        "learn": cfg.learn,
        "learn_lr": cfg.learn_lr,
        "label_targets": cfg.label_targets,
        "processes": processes,
        # distinct real images per meta-loss: --batch-size, times the processes with --batch-per-rank (a
        # batch larger than the data takes all of it)
        "real_batch": min(len(train), cfg.batch_size * (processes if cfg.batch_per_rank else 1)),
        "resume_history": state.resume_history,  # settings changed on --resume, and from when
        "accuracy": {
            k: v
            for k, v in result.to_dict().items()
            if k not in ("accuracies", "accuracies_before")
        },
        **timing,  # seconds_per_iteration: meta-gradients + updates only, this session
        "run_dir": str(out),
    }
