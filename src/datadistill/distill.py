"""The outer loop of dataset distillation (Wang et al. 2018, Alg. 1), resumable and checkpointed.

    for each iteration:
        sample a batch of real data and k initial weights θ_0 ~ p(θ_0) (of each network: --extra-models)
        for each θ_0: unroll the distilled steps and take the meta-gradient of the objective on the real batch
        Adam step on the distilled images x̃ and raw step sizes (η̃ = softplus(raw)), averaged over the θ_0

A run folder receives ``checkpoint.safetensors`` (and the one before it, ``checkpoint.prev.safetensors``) every
``checkpoint_every`` iterations, and at the end the distilled set, its manifest, the resolved ``config.yaml``,
image grids, a curve and ``metrics.json``. ``resume=True`` continues bit-for-bit from the last checkpoint.

This module is the driver (setup, ``outer_step``, the loop, the finish); its parts live beside it:
``outer_grads`` (an iteration's draws and meta-gradients), ``initial_state`` (where a run starts),
``schedule`` (the outer lr), ``selection`` (``--val-size``),
``distill_record`` (the manifest), ``checkpoint`` (resumable state on disk).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from datadistill.artifacts import (
    DistilledData,
    label_targets,
    remove_stale_temporaries,
    write_json,
)
from datadistill.checkpoint import (
    CHECKPOINT,
    PREVIOUS_CHECKPOINT,
    CheckpointContents,
    DistillState,
    anchor_paths,
    check_run_folder,
    checkpoint_contents,
    describe_changes,
    import_recorded_models,
    load_checkpoint,
    save_checkpoint,
    write_checkpoint,
)
from datadistill.config import DistillConfig, eval_networks, save_config, with_overrides
from datadistill.data import ImageDataset, load_dataset
from datadistill.distill_record import inner_recipe, run_manifest
from datadistill.distributed import World, init_world, resolve_device
from datadistill.evaluate import (
    EvalResult,
    Trainer,
    distilled_description,
    evaluate_steps,
    set_trainer,
)
from datadistill.formation import check_factor
from datadistill.initial_state import (
    INIT_IMAGE_KINDS,
    check_real_images,
    initial_state,
    starting_set,
)
from datadistill.inits import InitDistribution
from datadistill.minibatch_unroll import Recipe
from datadistill.models.user import is_factory_spec, network_signature, resolve_model
from datadistill.objectives import make_objective
from datadistill.outer_grads import check_real_batch, draw_inits, meta_grads, real_batch
from datadistill.schedule import outer_lr, schedule_progress, time_fraction
from datadistill.selection import Validation, make_validation, split_validation
from datadistill.setting import Setting, make_setting
from datadistill.unroll import MetaGrads, Steps

# A run whose meta-loss fell well below chance (ln K) and then sat at chance for this many iterations has
# collapsed: seen with 5 learned labels at Adam lr 0.05, where the unrolled net learned to predict uniformly.
COLLAPSE_WINDOW = 200


class DistillationDiverged(RuntimeError):
    """The meta-loss or its gradient became NaN/inf; nothing saved before is touched."""


def _resolve_out(cfg: DistillConfig, dataset_name: str, model_spec: str) -> Path:
    if cfg.out is not None:
        return Path(cfg.out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    model_name = model_spec.split(":")[-1].rsplit(".", 1)[-1]  # module:factory -> factory
    return Path("runs") / f"{dataset_name}-{model_name}-{cfg.init}-{stamp}"


@dataclass(frozen=True)
class _ExtraNetwork:
    """A network the set is also distilled for (``--extra-models``), with its fresh-init distribution."""

    spec: str
    model: nn.Module
    inits: InitDistribution


@dataclass
class _Run:
    """What stays fixed through a distillation run once it is set up (the data, networks and folder)."""

    cfg: DistillConfig  # validated; ``model`` is the spec of the network actually used
    world: World
    device: torch.device
    setting: Setting
    inits: InitDistribution  # the setting's, less any networks set aside for --val-size
    train: ImageDataset  # the part distilled from (without the --val-size images)
    # `train` on device (itself on CPU): each iteration's real batch comes from it.
    real: ImageDataset
    test: ImageDataset  # on device; evaluations read it in chunks (8-bit pixels stay 8-bit)
    validation: Validation | None
    out: Path
    recipe: Recipe | None  # the dataset protocol's inner training (None: replay)
    trainer: Trainer
    inits_per_process: int
    vmap_inits: bool
    extra: tuple[_ExtraNetwork, ...] = ()  # --extra-models, each trained from its own fresh inits
    start: DistilledData | None = None  # --init-images FOLDER: the set to go on distilling

    @property
    def model(self) -> nn.Module:
        return self.setting.model


def distill(
    cfg: DistillConfig | None = None,
    *,
    images: Tensor | None = None,
    progress: bool = True,
    train: Any = None,
    test: Any = None,
    **overrides: Any,
) -> DistilledData:
    """Distil a data set: learn ``steps`` batches of images and ``steps × epochs`` step sizes (Alg. 1).

    Under ``torchrun`` every rank calls this; inits are split across ranks and meta-gradients all-reduced.

    Args:
        cfg: the settings (see ``DistillConfig``); keyword ``overrides`` replace individual fields, e.g.
            ``distill(dataset="mnist", steps=1, iterations=500)``.
        images: optional starting pixels ``[steps, per_step, C, H, W]`` in normalised space (e.g. k-means
            centroids); with ``learn="lrs"`` they stay fixed and only the step sizes are learned.
        progress: show a progress bar.
        train: data from Python instead of ``cfg.dataset``: ``(x, y)`` tensors or arrays, or a torch
            ``Dataset`` of ``(image, label)`` (rules in :mod:`datadistill.data.sources`).
        test: the same for the test split; None holds out ``test_fraction`` (0.2) of ``train``.

    ``model`` (in ``cfg`` or ``overrides``) may also be ``"module:factory"``, a factory
    ``factory(in_shape, num_classes) -> nn.Module`` or an ``nn.Module`` (see :mod:`datadistill.models.user`).

    Returns:
        The ``DistilledData`` (also saved in the run folder ``manifest["run_dir"]``), with the measured
        test accuracy in its manifest.

    Raises:
        DistillationDiverged: the meta-loss became NaN/inf (the message names the last good checkpoint).
    """
    cfg, model_arg = _resolve_config(cfg, overrides, train, test)
    if images is not None:
        if not isinstance(images, Tensor) or not images.is_floating_point():
            got = (
                f"a {images.dtype} tensor" if isinstance(images, Tensor) else type(images).__name__
            )
            raise ValueError(
                "images= takes the starting pixels as a float torch.Tensor [steps, per_step, C, H, W] "
                f"in the data's normalised space, got {got}"
            )
        if not torch.isfinite(images).all():
            raise ValueError("images= holds NaN or infinite pixels: give finite starting pixels")
        images = images.float()
    if images is not None and cfg.init_images not in INIT_IMAGE_KINDS:
        raise ValueError(
            f"images= and --init-images {cfg.init_images} both give starting pixels: pass one"
        )
    run = _setup(cfg, model_arg, train, test)
    state = _start(run, images)
    timing = _drive(run, state, progress)
    return _finish(run, state, timing)


def _resolve_config(
    cfg: DistillConfig | None, overrides: dict[str, Any], train: Any, test: Any
) -> tuple[DistillConfig, Any]:
    """``(validated config, the model argument as given)``: ``cfg`` with ``overrides`` applied."""
    values = with_overrides(DistillConfig, cfg, overrides, "distill")
    # A network object or factory is not a setting that YAML can hold: it is recorded by its spec below.
    model_arg = values.get("model")
    if model_arg is not None and not isinstance(model_arg, str):
        values["model"] = None
    if train is not None:
        if "dataset" in overrides:
            raise ValueError("pass either dataset= or train=, not both")
        values["dataset"] = "python"
    elif test is not None:
        raise ValueError("test= needs train= (the data set's own test split is used with dataset=)")
    return anchor_paths(DistillConfig(**values).validate()), model_arg


def _load_splits(cfg: DistillConfig, train: Any, test: Any) -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)`` of ``cfg.dataset``, or of the Python data given as ``train=`` / ``test=``."""
    load = dict(resize=cfg.resize, pad=cfg.pad, channels=cfg.channels)
    if train is not None:
        from datadistill.data.sources import from_python

        return from_python(train, test, test_fraction=cfg.test_fraction, **load)
    load.update(data_dir=cfg.data_dir, test_fraction=cfg.test_fraction)
    return load_dataset(cfg.dataset, "train", **load), load_dataset(cfg.dataset, "test", **load)


def _setup(cfg: DistillConfig, model_arg: Any, train: Any, test: Any) -> _Run:
    """Load the data, build the network and inits, check the run folder: everything that may refuse the
    settings happens here, before anything is written."""
    world = init_world(cfg.device)
    device = resolve_device(cfg.device)
    train, test = _load_splits(cfg, train, test)
    train, held_out = split_validation(cfg, train)  # before anything is written: it may refuse
    check_real_images(cfg, train)
    check_real_batch(cfg, len(train), world.size)
    check_factor(cfg.formation, train.image_shape)
    # may refuse; on --resume the checkpoint holds all it gave, so the folder may since have moved
    start = None if cfg.resume else starting_set(cfg, train)
    if cfg.resume and cfg.out is not None:
        import_recorded_models(Path(cfg.out), cfg)
    setting = make_setting(
        dataset=cfg.dataset,
        model=model_arg,
        init=cfg.init,
        init_scheme=cfg.init_scheme,
        seed=cfg.seed,
        pretrained=cfg.pretrained,
        resize=cfg.resize,
        pad=cfg.pad,
        channels=cfg.channels,
        data_dir=cfg.data_dir,
        image_shape=train.image_shape,
        num_classes=train.num_classes,
        source=train.source,
        test_fraction=cfg.test_fraction,
    )
    if model_arg is not None and not isinstance(model_arg, str):
        cfg = dataclasses.replace(cfg, model=setting.model_spec)
    _check_classes(cfg, train.num_classes)
    setting.model.to(device)  # a user network's constant buffers (parameters come from the inits)
    validation, inits = make_validation(cfg, setting.inits, held_out, device)  # may refuse
    out = _resolve_out(cfg, train.name, setting.model_spec)
    check_run_folder(out, cfg)
    k = cfg.inits_per_iteration or (1 if inits.is_fixed else 4)  # per process
    # Unmeasured on a GPU for the dataset protocol (slower than a loop on the CPU), so opt-in there.
    batch_by_default = device.type == "cuda" and k > 1 and cfg.protocol != "dataset"
    vmap_inits = cfg.vmap_inits if cfg.vmap_inits is not None else batch_by_default
    if vmap_inits and cfg.meta_grad != "autograd":
        raise ValueError(
            "--vmap-inits batches the autograd meta-gradient; use --meta-grad autograd"
        )
    recipe = inner_recipe(cfg)
    extra = tuple(_extra_network(spec, cfg, train, device) for spec in cfg.extra_models)
    if setting.model_spec in {net.spec for net in extra}:  # as named, or the data set's default
        raise ValueError(
            f"--extra-models names {setting.model_spec} twice (the network distilled for, --model or "
            f"{cfg.dataset}'s default when it is not given, counts too): list each network once"
        )
    return _Run(
        cfg=cfg,
        world=world,
        device=device,
        setting=setting,
        inits=inits,
        train=train,
        real=train.to(device),
        test=test.to(device),
        validation=validation,
        out=out,
        recipe=recipe,
        trainer=set_trainer(setting.model, recipe, cfg.formation),
        inits_per_process=k,
        vmap_inits=vmap_inits,
        extra=extra,
        start=start,
    )


def _extra_network(
    spec: str, cfg: DistillConfig, train: ImageDataset, device: torch.device
) -> _ExtraNetwork:
    """``--extra-models`` network ``spec`` (may refuse it), its buffers on ``device``."""
    net, spec = resolve_model(spec, tuple(train.image_shape), train.num_classes)
    net.to(device)
    return _ExtraNetwork(spec, net, InitDistribution("random", net, cfg.init_scheme, cfg.seed))


def _start(run: _Run, images: Tensor | None) -> DistillState:
    """The state to distil from: a fresh one, or the last checkpoint's with ``--resume``; writes the run
    folder's ``config.yaml`` (with the settings changed on resume as comments)."""
    cfg, world, out = run.cfg, run.world, run.out
    lrs = None
    if run.start is not None:  # distill() refused images= beside it
        images, lrs = run.start.images.float(), run.start.lrs.float()
    # Built before the folder is made, so that its refusals (e.g. a set too large for memory) leave none.
    state = initial_state(cfg, run.train, run.device, images, lrs)
    state.data_sha256 = (run.train.source or {}).get("sha256")
    networks = [(run.setting.model_spec, run.model), *((e.spec, e.model) for e in run.extra)]
    state.model_signatures = {
        spec: network_signature(net) for spec, net in networks if is_factory_spec(spec)
    }
    world.barrier()  # every rank has checked the folder before rank 0 writes into it
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if run.start is not None:  # its own iterations and those of any set it went on from
        m = run.start.manifest
        state.iterations_before = (m.get("iterations") or 0) + (m.get("iterations_before") or 0)
    if cfg.resume:
        resumed_from = load_checkpoint(out, state, cfg)
        if world.is_main:
            tqdm.write(f"resuming {resumed_from} at iteration {state.iteration}", file=sys.stderr)
            latest = state.resume_history[-1] if state.resume_history else None
            if latest is not None and latest["iteration"] == state.iteration:
                tqdm.write(f"changed on resume: {describe_changes(latest)}", file=sys.stderr)
            remove_stale_temporaries(out)  # of writes a kill interrupted
    if world.is_main:
        notes = [f"changed on resume: {describe_changes(r)}" for r in state.resume_history]
        save_config(cfg, out / "config.yaml", notes)
    return state


def outer_step(run: _Run, state: DistillState, *, last_good: Path | None = None) -> dict[str, Any]:
    """One outer iteration (Alg. 1): sample a real batch and this rank's θ_0, take the meta-gradients,
    average them over inits and ranks, and take one Adam step on ``state`` (in place), at the lr that
    ``outer_lr`` gives for ``state.iteration`` and ``state.progress``. With ``--extra-models`` each of
    those networks adds its own k fresh inits, and the mean runs over all networks' inits.

    Every draw is seeded from ``(cfg.seed, iteration, …)``, so the step depends only on ``state``.

    Returns:
        The iteration's record ``{"iteration": i + 1, "loss": L, "lr": the Adam lr}`` (the mean meta-loss
        before the step).

    Raises:
        DistillationDiverged: the meta-loss or its gradient is not finite (``state`` is left unchanged;
            ``last_good`` names the checkpoint to go back to).
    """
    cfg, world, device, k = run.cfg, run.world, run.device, run.inits_per_process
    it = state.iteration
    lr = outer_lr(cfg, it, state.progress)
    for group in state.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    batch = real_batch(len(run.real), cfg, it, world.rank).to(device)
    objective = make_objective(
        cfg.objective,
        run.real.take(batch),  # [B, C, H, W] normalised float32 (8-bit pixels are normalised here)
        run.real.labels[batch],
        source_class=cfg.source_class,
        target_class=cfg.target_class,
        source_weight=cfg.source_weight,
    )
    steps = state.steps()
    # Sum the meta-gradients of this rank's inits (global indices rank·k … rank·k + k − 1) of every
    # network, then over ranks: the mean over k · ranks · networks inits.
    grads = _rank_meta_grads(run, run.model, run.inits, steps, objective, it)
    for net in run.extra:
        grads += _rank_meta_grads(run, net.model, net.inits, steps, objective, it, net.spec)
    sums = [sum(parts) for parts in zip(*(g.tensors() for g in grads), strict=True)]
    inits = k * world.size * (1 + len(run.extra))
    loss, d_images, d_lrs, *d_labels = (t / inits for t in world.all_reduce_sum(sums))
    if not all(torch.isfinite(t).all() for t in (loss, d_images, d_lrs, *d_labels)):
        where = "no checkpoint was written yet"
        fix = "lower --lr or --lr-init and run the same command again (the folder can be reused)"
        if last_good:
            fix = (
                "lower --lr and --resume from the checkpoint, or lower --lr-init and start again in "
                "another --out (--lr-init cannot change on resume)"
            )
            where = f"last good checkpoint: {last_good}"
            previous = last_good.with_name(PREVIOUS_CHECKPOINT)
            if previous.exists():  # the last one may already hold a set that was going bad
                where += f" (the one before it: {previous}; to resume from that one, copy it over the last)"
        raise DistillationDiverged(
            f"meta-loss or its gradient became non-finite (loss {loss.item()}) at iteration {it}; "
            f"{where}; {fix}"
        )
    state.optimizer.zero_grad(set_to_none=True)
    if state.images.requires_grad:
        state.images.grad = d_images
    if state.raw_lrs.requires_grad:  # lrs = softplus(raw), and d softplus(r)/dr = sigmoid(r)
        state.raw_lrs.grad = d_lrs * torch.sigmoid(state.raw_lrs.detach())
    if d_labels:
        state.labels.grad = state.label_grad(d_labels[0])
    state.optimizer.step()
    state.iteration = it + 1
    return {"iteration": state.iteration, "loss": loss.item(), "lr": lr}


def _rank_meta_grads(
    run: _Run,
    model: nn.Module,
    inits: InitDistribution,
    steps: Steps,
    objective,
    it: int,
    *stream: str,
) -> list[MetaGrads]:
    """This rank's θ_0 of ``model`` at iteration ``it`` and their meta-gradients (``outer_grads``)."""
    own = range(
        run.world.rank * run.inits_per_process, (run.world.rank + 1) * run.inits_per_process
    )
    params0 = draw_inits(inits, run.cfg, it, own, run.device, *stream)
    return meta_grads(
        model,
        params0,
        steps,
        objective,
        run.cfg,
        recipe=run.recipe,
        vmap_inits=run.vmap_inits,
        iteration=it,
        first=own.start,
        stream=stream,
    )


def _drive(run: _Run, state: DistillState, progress: bool) -> dict[str, float]:
    """Run ``outer_step`` until ``cfg.iterations`` or the time limit, with the curve's evaluations,
    logging, the collapse warning and checkpoints between steps. Returns the session's timing."""
    cfg, world, out = run.cfg, run.world, run.out
    writer = _tensorboard(out) if cfg.tensorboard and world.is_main else None
    last_good = out / CHECKPOINT if (out / CHECKPOINT).exists() else None
    pending: CheckpointContents | None = None  # the last checkpoint's contents, until the next step
    started = time.perf_counter()
    step_seconds, first_iteration = 0.0, state.iteration  # time in meta-gradients + updates only
    # Distillation time without the test-curve evaluations, carried over from earlier sessions (history).
    elapsed_before = state.history[-1].get("elapsed_seconds", 0.0) if state.history else 0.0
    curve_seconds = 0.0  # this session's test-curve evaluations
    progress_before = state.progress  # where an earlier session left the schedule (--time-limit)
    warned_collapse = False
    bar = tqdm(
        total=cfg.iterations,
        initial=state.iteration,
        desc="distill",
        disable=not (progress and world.is_main),
    )
    while state.iteration < cfg.iterations:
        used = time_fraction(world, cfg, started)
        if used is not None and used > 1:
            if state.history and "accuracy" not in state.history[-1]:
                # The last iterates, at the schedule's lowest lr, get a check too: with --val-size
                # the set stopped at is a candidate for the result.
                curve_seconds += _evaluate_point(run, state, state.history[-1])
            if world.is_main:
                save_checkpoint(out, state, cfg)
                tqdm.write(
                    f"time limit reached after {state.iteration} iterations", file=sys.stderr
                )
            break
        state.progress = schedule_progress(state.iteration, cfg.iterations, used, progress_before)
        lrs = F.softplus(state.raw_lrs.detach())  # the step sizes this step starts from
        step_start = time.perf_counter()
        try:
            record = outer_step(run, state, last_good=last_good)
        except KeyboardInterrupt:
            # An interrupt is no divergence: keep the checkpoint that was waiting for this step.
            if pending is not None and world.is_main:
                write_checkpoint(out, pending)
            raise
        step_seconds += time.perf_counter() - step_start
        if pending is not None:  # the meta-gradient from it was finite: a good state to resume from
            if world.is_main:
                write_checkpoint(out, pending)
            world.barrier()
            last_good, pending = out / CHECKPOINT, None  # every rank names it if the run diverges
        # wall time of distillation so far, all sessions, without the test-curve evaluations
        record["elapsed_seconds"] = elapsed_before + time.perf_counter() - started - curve_seconds
        if state.iteration % cfg.eval_every == 0 or state.iteration == cfg.iterations:
            curve_seconds += _evaluate_point(run, state, record)
        state.history.append(record)
        _log(writer, bar, record, lrs)
        if not warned_collapse and state.iteration % (COLLAPSE_WINDOW // 4) == 0:
            warned_collapse = _warn_if_collapsed(run, state)
        if state.iteration == cfg.iterations:
            if world.is_main:
                save_checkpoint(out, state, cfg)
            world.barrier()
        elif state.iteration % cfg.checkpoint_every == 0:
            # Written after the next step, if its meta-loss and gradient are finite: a state whose next
            # step diverges would make "resume from the last good checkpoint" diverge again at once.
            pending = checkpoint_contents(state, cfg)
    bar.close()
    if writer is not None:
        writer.close()
    return {
        "distill_seconds_this_session": round(time.perf_counter() - started, 1),
        "curve_seconds_this_session": round(curve_seconds, 1),  # test-curve evaluations within it
        "seconds_per_iteration": step_seconds / max(1, state.iteration - first_iteration),
    }


def _evaluate_point(run: _Run, state: DistillState, record: dict[str, Any]) -> float:
    """Add a curve point to ``record``: test accuracy on a few networks, and with ``--val-size`` the
    held-out accuracy (keeping the best iterate in ``state.best``). Returns its seconds (also in
    ``record["eval_seconds"]``; they are not part of ``elapsed_seconds``)."""
    curve_start = time.perf_counter()
    n_curve = eval_networks("curve", run.inits.is_fixed)
    after = _evaluate_split(
        run.world,
        run.model,
        state.steps(),
        run.inits,
        run.test,
        run.test.labels,
        n_curve,
        train=run.trainer,
    )[0]
    record["accuracy"] = statistics.fmean(after)
    record["accuracy_std"] = statistics.pstdev(after)
    if run.validation is not None:
        record["val_accuracy"] = run.validation.score(run.model, state.steps(), run.trainer)
        if state.best is None or record["val_accuracy"] > state.best["val_accuracy"]:
            state.best = state.snapshot(record["val_accuracy"])
    record["eval_seconds"] = time.perf_counter() - curve_start
    return record["eval_seconds"]


def _log(writer, bar, record: dict[str, Any], lrs: Tensor) -> None:
    """Show ``record`` on the progress bar (and in TensorBoard)."""
    if writer is not None:
        writer.add_scalar("meta_loss", record["loss"], record["iteration"])
        if "accuracy" in record:
            writer.add_scalar("test_accuracy", record["accuracy"], record["iteration"])
    postfix = {"loss": f"{record['loss']:.3f}", "lr": f"{lrs.min():.3g}-{lrs.max():.3g}"}
    if "accuracy" in record:
        postfix["acc"] = f"{record['accuracy']:.1f}"
    bar.set_postfix(postfix)
    bar.update(1)


def _warn_if_collapsed(run: _Run, state: DistillState) -> bool:
    """Warn once (rank 0) when the meta-loss has collapsed to chance; True when it has."""
    num_classes = run.train.num_classes
    warned = collapsed([r["loss"] for r in state.history], num_classes, COLLAPSE_WINDOW)
    if warned and run.world.is_main:
        tqdm.write(
            f"warning: the meta-loss has sat at chance level (ln {num_classes} = "
            f"{math.log(num_classes):.3f}) for the last {COLLAPSE_WINDOW} iterations after "
            "having been lower: this run has likely collapsed and will not recover. Restart it "
            "with another --seed or a lower --lr.",
            file=sys.stderr,
        )
    return warned


def collapsed(losses: list[float], num_classes: int, window: int = COLLAPSE_WINDOW) -> bool:
    """True when the last ``window`` meta-losses all sit at chance level (≥ 0.95 ln K) although an earlier
    one was well below it (< 0.9 ln K): the run learned, then collapsed. A slow start is not a collapse."""
    if len(losses) <= window:
        return False
    chance = math.log(num_classes)
    return min(losses[-window:]) >= 0.95 * chance and min(losses[:-window]) < 0.9 * chance


def _check_classes(cfg: DistillConfig, num_classes: int) -> None:
    for name in ("source_class", "target_class"):
        value = getattr(cfg, name)
        if value is not None and not 0 <= value < num_classes:
            raise ValueError(
                f"--{name.replace('_', '-')} {value} is not a class of {cfg.dataset} (0…{num_classes - 1})"
            )


def _evaluate_split(world: World, model, steps, inits, test, test_y, n: int, *, train: Trainer):
    """``evaluate_steps`` with the n networks dealt out over the ranks, results gathered in order."""
    n = min(n, inits.max_evaluation_models() or n)
    share = range(world.rank, n, world.size)
    after, before = [], []
    for i in share:
        a, b = evaluate_steps(
            model, steps, inits, test, test_y, 1, start=i, progress=False, train=train
        )
        after += a
        before += b
    return world.gather_floats(after), world.gather_floats(before)


def _finish(run: _Run, state: DistillState, timing: dict[str, float]) -> DistilledData:
    """Evaluate the result (the best validated iterate, else the last) on ``eval_models`` networks and
    write it, its manifest, metrics and pictures to the run folder (rank 0)."""
    cfg, world, out, train = run.cfg, run.world, run.out, run.train
    model, inits = run.setting.model, run.setting.inits  # the whole pool: --val-size networks too
    n_eval = cfg.eval_models or eval_networks("distill", inits.is_fixed)
    if inits.max_evaluation_models() is not None:
        n_eval = min(n_eval, inits.max_evaluation_models())
    images, labels, raw_lrs = state.chosen()
    steps = Steps(images, label_targets(labels, state.label_kind), F.softplus(raw_lrs))
    after, before = _evaluate_split(
        world, model, steps, inits, run.test, run.test.labels, n_eval, train=run.trainer
    )
    result = EvalResult.from_accuracies(
        after,
        before,
        init=inits.kind,
        protocol=cfg.protocol,
        recipe=distilled_description(run.recipe),
    )
    data = DistilledData(
        images.cpu(),
        labels.cpu(),
        F.softplus(raw_lrs).cpu(),
        run_manifest(
            run.cfg,
            train,
            run.setting,
            state,
            result,
            timing,
            recipe=run.recipe,
            processes=world.size,
            out=out,
        ),
    )
    if world.is_main:
        data.save(out, overwrite=True)  # a finished run resumed for more iterations
        write_json(out / "metrics.json", state.history)
        from datadistill.viz import plot_curves, save_step_grids

        save_step_grids(
            train.denormalize(data.images), data.targets(), data.lrs, train.class_names, out
        )
        plot_curves(state.history, out / "curve.png")
        remove_stale_temporaries(out)  # of checkpoint writes a kill interrupted in earlier sessions
    world.barrier()
    return data


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from err
    return SummaryWriter(str(out / "tensorboard"))
