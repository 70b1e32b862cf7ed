"""Evaluation: train fresh networks by replaying a distilled schedule, measure accuracy on the full real test set.

The protocol is the paper's (Wang et al. 2018, §4): start from θ_0 drawn from the run's init distribution
(held-out inits for random kinds, never ones seen in distillation), apply the distilled steps in order with their
learned lrs for all epochs, and report test accuracy as mean ± std over networks, beside the accuracy before
training.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import pickle
import statistics
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from datadistill.artifacts import (
    DistilledData,
    InvalidArtifact,
    as_distilled,
    check_writable,
    write_json,
)
from datadistill.config import EVAL_NETWORKS, EvaluateConfig, eval_networks, positive_int
from datadistill.data import ImageDataset
from datadistill.distributed import resolve_device
from datadistill.formation import decode_set, decode_steps
from datadistill.inits import InitDistribution
from datadistill.minibatch_unroll import Recipe, batch_order, train
from datadistill.models.base import InputTooSmall, tested_logits
from datadistill.models.user import PYTHON_PREFIX, ModelLike
from datadistill.seeds import generator as seeded_generator
from datadistill.seeds import global_rng
from datadistill.setting import Setting, setting_from_manifest
from datadistill.train import FieldRecipe, train_as_dataset
from datadistill.unroll import Params, Steps, unroll


def _model_count(models: int | None, inits: InitDistribution) -> int:
    """``--models`` as given (must be positive), else the init kind's default, capped at the pool."""
    if models is None:
        available = inits.max_evaluation_models()
        default = eval_networks("evaluate", inits.is_fixed)
        return default if available is None else min(default, available)
    positive_int("models", models)
    return models


def _test_split(setting: Setting, manifest: dict[str, Any], test: Any) -> ImageDataset:
    """The real test split: ``test`` from Python (normalised like the run), else loaded by the setting."""
    if test is None:
        split = setting.load("test")
        if split.num_classes != manifest["num_classes"] or tuple(split.image_shape) != tuple(
            manifest["images_shape"][2:]
        ):
            raise InvalidArtifact(
                f"the set's manifest says {manifest['num_classes']} classes of "
                f"{'x'.join(map(str, manifest['images_shape'][2:]))} images, but its data set "
                f"{manifest['dataset']!r} has {split.num_classes} of "
                f"{'x'.join(map(str, split.image_shape))}: the manifest does not describe this set"
            )
        return split
    from datadistill.data.sources import test_split_from_python

    split = test_split_from_python(
        test, like=manifest, resize=setting.resize, pad=setting.pad, channels=setting.channels
    )
    want = tuple(manifest["images_shape"][2:])
    if tuple(split.image_shape) != want:
        shown = "x".join(map(str, split.image_shape))
        raise ValueError(
            f"test= holds {shown} images (channels x height x width) but the set's are "
            f"{'x'.join(map(str, want))}: pass test images of the set's shape (resize or convert them first)"
        )
    return split


def _check_json(json_path: str | Path | None) -> None:
    """Refuse a ``--json`` that cannot be written, or that is one of a run's own files (``check_writable``):
    writing the result over the evaluated run's manifest or tensors would destroy it."""
    if json_path is not None:
        check_writable(json_path, "--json")


@dataclass
class EvalResult:
    """Test accuracy (%) of networks trained on a distilled schedule."""

    accuracy_mean: float
    accuracy_std: float
    n_models: int
    accuracy_before_mean: float
    accuracy_before_std: float
    accuracies: list[float] = field(default_factory=list)
    accuracies_before: list[float] = field(default_factory=list)
    protocol: str = (
        "replay"  # replay: distilled steps in order with learned lrs (the paper's protocol)
    )
    init: str = ""
    # how the networks were trained under the protocol: "" (replay), "distilled: …" (the set's own inner recipe),
    # or a description of the field's recipe (dataset protocol)
    recipe: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A small Markdown table of the result (and the training recipe under it, when there is one)."""
        recipe = f"\nrecipe: {self.recipe}" if self.recipe else ""
        return (
            f"| protocol | init | networks | before training | after |\n|---|---|---|---|---|\n"
            f"| {self.protocol} | {self.init} | {self.n_models} | "
            f"{self.accuracy_before_mean:.2f} ± {self.accuracy_before_std:.2f} | "
            f"{self.accuracy_mean:.2f} ± {self.accuracy_std:.2f} |{recipe}"
        )

    @classmethod
    def from_accuracies(cls, after: list[float], before: list[float], **kwargs) -> EvalResult:
        return cls(
            accuracy_mean=statistics.fmean(after),
            accuracy_std=statistics.pstdev(after) if len(after) > 1 else 0.0,
            n_models=len(after),
            accuracy_before_mean=statistics.fmean(before),
            accuracy_before_std=statistics.pstdev(before) if len(before) > 1 else 0.0,
            accuracies=after,
            accuracies_before=before,
            **kwargs,
        )


def replay(data: DistilledData, model: nn.Module, params: Params) -> Params:
    """Replay the distilled steps, in order and with the learned lrs, from θ_0 = ``params``; return θ_T.

    The paper's protocol for one network: ``images [steps, per_step, C, H, W]`` are applied for all epochs,
    update t with step size ``lrs[t]``. ``params`` may live on any device; the schedule is moved there.
    """
    if not isinstance(data, DistilledData):
        raise ValueError(
            f"replay takes a DistilledData, got {type(data).__name__}; load a run folder with "
            "DistilledData.load(folder)"
        )
    if not params:
        raise ValueError(
            "replay needs θ_0's parameters, got an empty dict; e.g. dict(model.named_parameters())"
        )
    steps = data.steps().to(next(iter(params.values())).device)
    final = unroll(model, params, steps, create_graph=False)[-1]
    return {name: p.detach() for name, p in final.items()}


Trainer = Callable[[Params, Steps], Params]  # (θ_0, the stored set) -> trained θ, no graph


def set_trainer(model: nn.Module, recipe: Recipe | None, formation: int = 1) -> Trainer:
    """How a set trains a network in the training it was distilled for, from θ_0 on its decoded images
    (``--formation``): replay (``recipe`` None: the steps in order with their learned lrs), or the dataset
    protocol's inner recipe (``recipe``: N minibatch updates with the one learned lr, the same batch order
    and augmentation draws for every network). Distillation's own evaluations train this way too."""
    if recipe is None:
        return lambda params, steps: unroll(
            model, params, decode_steps(steps, formation), create_graph=False
        )[-1]

    def train_minibatch(params: Params, steps: Steps) -> Params:
        images, labels = decode_set(steps.images, steps.labels, formation)
        generator = seeded_generator("evaluation-order")
        order = batch_order(len(images), recipe, generator)
        trained, _ = train(
            model,
            params,
            images,
            labels,
            steps.lrs.reshape(()),
            recipe,
            order,
            generator=generator,
        )
        return {n: p.detach() for n, p in trained.items()}

    return train_minibatch


def distilled_recipe(manifest: dict[str, Any]) -> Recipe | None:
    """The inner training a set was distilled with: its manifest's ``recipe`` for the dataset protocol, None
    (replay) for the paper's protocol."""
    if manifest.get("protocol") != DATASET_PROTOCOL or not manifest.get("recipe"):
        return None
    return Recipe.from_record(manifest["recipe"])


def distilled_description(recipe: Recipe | None) -> str:
    """``EvalResult.recipe`` of networks trained by ``set_trainer``: empty for replay."""
    return "" if recipe is None else f"distilled: {recipe.describe()}, the set's step size"


def replay_finite(model: nn.Module, params: Params, steps: Steps) -> Params | None:
    """θ_T after replaying ``steps`` from ``params`` (no graph), or None when the network diverged
    (non-finite weights): the experiments score such a network as 0 instead of failing, since large lrs in a
    tuning grid are expected to diverge."""
    final = unroll(model, params, steps, create_graph=False)[-1]
    return final if all(bool(torch.isfinite(p).all()) for p in final.values()) else None


# Images per forward pass in `accuracy`. The pass's transient memory grows with it: LeNet on 28x28 digits
# needs ~190 MiB above the data at 2,000 and ~14 MiB at 500 (its first conv unfolds every image), which at
# 2,000 set the whole distillation's peak RSS. The logits do not depend on it (equal to the bit at 256-2,000
# on CPU), and 500 was no slower.
EVAL_BATCH = 500


@torch.no_grad()
def accuracy(
    model: nn.Module,
    params: Params,
    images: Tensor | ImageDataset,
    labels: Tensor,
    batch_size: int = EVAL_BATCH,
) -> float:
    """Top-1 accuracy (%) of ``model`` with ``params`` on ``images [N, C, H, W]``, ``labels [N]``.

    ``images`` may be an ``ImageDataset``: it is then read ``batch_size`` images at a time, so a split held
    as 8-bit pixels is never normalised whole (the same accuracy as on its ``images``).
    """
    read = images.take if isinstance(images, ImageDataset) else images.__getitem__
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = tested_logits(model, params, read(slice(i, i + batch_size)))
        correct += int((logits.argmax(dim=1) == labels[i : i + batch_size]).sum())
    return 100.0 * correct / max(len(images), 1)


def evaluate_steps(
    model: nn.Module,
    steps: Steps,
    inits: InitDistribution,
    test_images: Tensor | ImageDataset,
    test_labels: Tensor,
    n_models: int,
    *,
    start: int = 0,
    progress: bool = False,
    train: Callable[[Params, Steps], Params] | None = None,
) -> tuple[list[float], list[float]]:
    """Accuracies (%) after and before replaying ``steps`` from ``n_models`` evaluation inits.

    Args:
        model: the network (called functionally).
        steps: images ``[S, n, C, H, W]``, labels, lrs ``[S·E]`` on the device of ``test_images``.
        inits: p(θ_0); its evaluation inits are used (held out from distillation for random kinds).
        test_images: ``[N, C, H, W]`` real test images (or an ``ImageDataset``, read in chunks: see
            ``accuracy``); ``test_labels``: ``[N]``.
        n_models: networks to train.
        start: index of the first evaluation init (to split the work across processes).
        train: ``(θ_0, steps) -> θ`` how a network trains on the set; default: replay ``steps`` in order.
    """
    device = test_images.device
    steps = Steps(steps.images.detach(), steps.labels.detach(), steps.lrs.detach())
    after, before = [], []
    bar = tqdm(
        inits.evaluation_inits(n_models, start),
        total=n_models,
        desc="evaluate",
        disable=not progress,
        leave=False,
    )
    for i, params in enumerate(bar, start):
        params = {k: v.to(device) for k, v in params.items()}
        before.append(accuracy(model, params, test_images, test_labels))
        with global_rng("evaluation network", i, device=device):  # a user's dropout
            if train is None:
                trained = unroll(model, params, steps, create_graph=False)[-1]
            else:
                trained = train(params, steps)
        after.append(accuracy(model, trained, test_images, test_labels))
        bar.set_postfix(acc=f"{statistics.fmean(after):.2f}")
    return after, before


def evaluate(
    data: DistilledData | str | Path,
    *,
    models: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    json_path: str | Path | None = None,
    progress: bool = True,
    model: ModelLike | None = None,
    test: Any = None,
) -> EvalResult:
    """Evaluate a distilled set (or a run folder) with the paper's replay protocol: networks from the run's
    init distribution trained as in distillation (``set_trainer``): the steps in order with their learned lrs,
    or, for a set distilled for the dataset protocol, the inner recipe its manifest records (its updates,
    optimizer and learned lr; the result's ``recipe`` says which). The field's protocol, which
    ``datadistill evaluate`` uses for sets distilled with ``protocol="dataset"``, is :func:`evaluate_as_dataset`.

    Args:
        data: a ``DistilledData`` or the folder it was saved to.
        models: networks to train; default 1 for fixed inits, 200 held-out inits for random ones.
        data_dir: where the real data lives (default: the manifest's, else $DATADISTILL_DATA / cache).
        device: ``cpu`` or ``cuda``.
        json_path: also write the result as JSON (keys ``accuracy_mean``, ``accuracy_std``, ``n_models``,
            ``accuracy_before_mean``, …).
        model: the network, when the run's was a Python object (an ``nn.Module`` or factory); default:
            rebuilt from the manifest.
        test: test data from Python, ``(x, y)`` or a torch ``Dataset`` (needed for runs distilled from
            ``train=``); normalised with the run's recorded mean and std.

    Returns:
        ``EvalResult`` with accuracies in percent.
    """
    _check_json(json_path)  # before the networks are trained, not after
    data = as_distilled(data)
    manifest = data.manifest
    recorded = manifest["model"]
    if isinstance(model, str) and model != recorded and not recorded.startswith(PYTHON_PREFIX):
        raise ValueError(
            f"model={model!r}: this set replays on the network it was distilled for ({recorded}); to "
            f"train a {model} on its images use evaluate_as_dataset(data, model={model!r})"
        )
    setting = setting_from_manifest(manifest, data_dir=data_dir, model=model)
    dev = resolve_device(device)
    setting.model.to(dev)  # a user network's constant buffers (parameters come from the inits)
    n = _model_count(models, setting.inits)
    available = setting.inits.max_evaluation_models()
    if available is not None and n > available:
        if setting.inits.is_fixed:
            raise ValueError(
                f"--models {n}: this set was distilled for one fixed init, the one network it trains; "
                "leave --models out (or use --protocol dataset for fresh networks)"
            )
        raise ValueError(f"--models {n} exceeds the {available} held-out networks of the pool")
    test = _test_split(setting, manifest, test)
    recipe = distilled_recipe(manifest)
    after, before = evaluate_steps(
        setting.model,
        Steps(data.images, data.targets(), data.lrs).to(dev),  # as stored: the trainer decodes it
        setting.inits,
        test.to(dev),  # normalised chunk by chunk when held as 8-bit pixels
        test.labels.to(dev),
        n,
        progress=progress,
        train=set_trainer(setting.model, recipe, data.formation),
    )
    result = EvalResult.from_accuracies(
        after, before, init=setting.inits.kind, recipe=distilled_description(recipe)
    )
    if json_path is not None:
        write_json(Path(json_path), result.to_dict())
    if not all(math.isfinite(a) for a in after):
        raise RuntimeError("evaluation produced non-finite accuracies")
    return result


# ---------------------------------------------------------------------------------------------------------
# The field's protocol: the distilled images as an ordinary training set
# ---------------------------------------------------------------------------------------------------------
# Later work (DC, DSA, MTT, …) trains a network on the synthetic images with minibatch SGD for many epochs, in
# any order and with its own step size. The paper's images are made to be replayed in order with their learned
# lrs; many users of the reference code retrained them the field's way and got 12–62%. Both are useful numbers,
# so both exist here, and every result says which protocol produced it (``protocol="dataset"`` here).

DATASET_PROTOCOL = "dataset"  # EvalResult.protocol of networks trained by ``train_as_dataset``
FIELD_MODEL = "convnet"  # the field's evaluation network: ConvNet-3, 128 channels, instance norm
FIELD_MODELS = EVAL_NETWORKS["dataset"]  # networks per dataset-protocol evaluation


def evaluate_as_dataset(
    data: DistilledData | str | Path,
    *,
    model: ModelLike | None = None,
    models: int | None = None,
    recipe: FieldRecipe | None = None,
    epochs: int | None = None,
    augment: str | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    json_path: str | Path | None = None,
    progress: bool = True,
    test: Any = None,
    jobs: int = 1,
) -> EvalResult:
    """Evaluate a distilled set with the field's protocol: fresh networks trained on it normally.

    Fresh networks of architecture ``model`` (default: ConvNet-3 with 128 channels, the field's) start from
    PyTorch's default initialisation with seeds that distillation never uses, train with ``recipe`` and are
    tested on the full real test set. Adaptation sets (``pretrained-*`` inits) without a ``model`` start from
    their pre-trained networks instead (held-out ones for ``pretrained-random``). The result has
    ``protocol="dataset"`` and the recipe in ``recipe``, so it cannot be mistaken for a replay number.

    Args:
        data: a ``DistilledData`` or the folder it was saved to.
        model: the evaluation network: a registered name (``convnet``, ``lenet``, ``mlp``, ``resnet18``, …),
            ``module:factory``, a factory or an ``nn.Module``.
        models: networks to train (default 5).
        recipe: the training (default ``FieldRecipe()``); ``epochs`` and ``augment`` override its fields.
        epochs: epochs of the recipe (``--epochs``; default 300).
        augment: ``none``, ``dsa`` or ``dc`` (``--augment``; default none): every minibatch's augmentation.
        data_dir: where the real data lives (default: the manifest's, else $DATADISTILL_DATA / cache).
        device: ``cpu`` or ``cuda``.
        json_path: also write the result as JSON.
        test: the real test split from Python, as in :func:`evaluate`.
        jobs: networks trained at once, each in its own CPU process with ``torch.get_num_threads() // jobs``
            threads (at least one). It pays for networks that train for minutes (ConvNet-3: 1.10× on two
            cores), not for LeNet or the MLP, whose seconds the processes' start-up outweighs (docs/RESULTS.md).
            Network i is the same network either way (its init and its generator, seeded i); its accuracy may
            differ by a few test images, as float sums split over other thread counts do.

    Returns:
        ``EvalResult`` with accuracies in percent and ``protocol == "dataset"``.
    """
    _check_json(json_path)  # before the networks are trained, not after
    data = as_distilled(data)
    recipe = recipe or FieldRecipe()
    if not isinstance(recipe, FieldRecipe):
        raise ValueError(
            f"recipe= takes a FieldRecipe, got {type(recipe).__name__}; e.g. FieldRecipe(epochs=300)"
        )
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    if augment is not None:
        recipe = dataclasses.replace(recipe, augment=augment)  # checked by FieldRecipe
    if models is not None:
        positive_int("models", models)
    positive_int("jobs", jobs)
    dev = resolve_device(device)
    if jobs > 1 and dev.type != "cpu":
        raise ValueError(
            f"--jobs {jobs} trains networks in parallel CPU processes: use --jobs 1 on a GPU"
        )
    pretrained = data.manifest.get("init", "").startswith("pretrained")
    adaptation = pretrained and model is None
    manifest = data.manifest
    if pretrained and not adaptation:
        # Fresh networks of another architecture: the set's pool (pre-trained networks of its own
        # architecture) is never drawn from, so it must not be loaded for, and refused by, this one.
        manifest = {**manifest, "init": "random", "pretrained": None}
    try:
        setting = setting_from_manifest(
            manifest, data_dir=data_dir, model=None if adaptation else model or FIELD_MODEL
        )
    except InputTooSmall as err:  # its fix, --resize, is distill's: a stored set keeps its size
        h, w = data.images.shape[-2:]
        raise ValueError(
            f"{err.arch} needs inputs of at least {err.min_hw}x{err.min_hw} pixels but this set's "
            f"images are {h}x{w}: evaluate it with another --model (mlp, linear, or module:factory)"
        ) from None
    setting.model.to(dev)  # a user network's constant buffers (parameters come from the inits)
    n = models or FIELD_MODELS
    if adaptation:
        n = _model_count(models, setting.inits)
        available = setting.inits.max_evaluation_models()
        n = min(n, available) if available is not None else n
        inits = setting.inits.evaluation_inits(n)
        init_kind = setting.inits.kind
    else:
        fresh = InitDistribution("random", setting.model, "default")
        inits = fresh.evaluation_inits(n)
        init_kind = "random (PyTorch default)"
    test = _test_split(setting, data.manifest, test)
    test_x, test_y = test.to(dev), test.labels.to(dev)  # test_x: read in chunks by accuracy
    images, labels = (t.to(dev) for t in data.training_set())  # decoded: --formation
    if labels.is_floating_point() and bool((labels < 0).any()):
        raise ValueError(
            f"{data.manifest.get('run_dir') or 'this set'} has negative learned targets (label targets "
            f"{data.label_targets!r}, min {labels.min().item():.3g}): cross-entropy on them has no "
            "minimum, so ordinary training diverges; evaluate it with --protocol replay, or distil with "
            "--label-targets softmax"
        )
    field = _FieldTraining(setting.model, images, labels, recipe, test_x, test_y)
    inits = ({k: v.to(dev) for k, v in params.items()} for params in inits)
    if jobs == 1:
        # by the epoch: one ConvNet-3 trains for minutes, a ResNet-18 for a quarter of an hour
        with tqdm(
            total=n * recipe.epochs, desc="evaluate", unit="epoch", disable=not progress
        ) as bar:
            scores = []
            for i, params in enumerate(inits):
                scores.append(field.score(i, params, on_epoch=lambda _: bar.update()))
                bar.set_postfix(networks=f"{i + 1}/{n}", acc=f"{scores[-1][1]:.2f}")
    else:
        scores = _score_in_processes(field, list(inits), jobs, progress)
    before, after = [b for b, _ in scores], [a for _, a in scores]
    result = EvalResult.from_accuracies(
        after,
        before,
        init=init_kind,
        protocol=DATASET_PROTOCOL,
        recipe=f"{setting.model_spec}: {recipe.describe()}",
    )
    if json_path is not None:
        write_json(Path(json_path), result.to_dict())
    return result


@dataclass
class _FieldTraining:
    """One network's part of ``evaluate_as_dataset``: what every network shares, and how network i trains."""

    model: nn.Module
    images: Tensor  # [N, C, H, W], decoded
    labels: Tensor  # [N] classes or [N, K] targets
    recipe: FieldRecipe
    test_images: Tensor | ImageDataset
    test_labels: Tensor

    def score(
        self, i: int, params: Params, on_epoch: Callable[[int], None] | None = None
    ) -> tuple[float, float]:
        """Test accuracy (%) of network i before and after training from θ_0 = ``params``."""
        before = accuracy(self.model, params, self.test_images, self.test_labels)
        generator = torch.Generator().manual_seed(i)  # network i's shuffling and augmentation
        # a user's dropout draws from the global generator: seeded by i, so --jobs changes nothing
        with global_rng("field network", i, device=self.images.device):
            trained = train_as_dataset(
                self.model,
                self.images,
                self.labels,
                params,
                self.recipe,
                generator=generator,
                on_epoch=on_epoch,
            )
        return before, accuracy(self.model, trained, self.test_images, self.test_labels)


_worker_training: _FieldTraining | None = None  # set in each worker process by _start_worker
_worker_epochs: Any = None  # the shared count of epochs trained, for the parent's progress bar


def _start_worker(training: _FieldTraining, threads: int, epochs: Any) -> None:
    global _worker_training, _worker_epochs
    torch.set_num_threads(threads)
    _worker_training, _worker_epochs = training, epochs


def _count_epoch(_: int) -> None:
    with _worker_epochs.get_lock():
        _worker_epochs.value += 1


def _score_in_worker(i: int, params: Params) -> tuple[float, float]:
    assert _worker_training is not None
    return _worker_training.score(i, params, on_epoch=_count_epoch)


def _score_in_processes(
    training: _FieldTraining, inits: list[Params], jobs: int, progress: bool
) -> list[tuple[float, float]]:
    """``training.score`` of every init, ``jobs`` networks at a time in spawned processes (fork after OpenMP
    has started can hang); the shared data goes to each worker once. Stopped early (an error, Ctrl-C), the
    workers are ended too rather than left to finish networks nobody will read."""
    try:
        pickle.dumps(training.model)
    except Exception as error:  # a local class, a lambda inside: whatever pickle refuses
        raise ValueError(
            f"--jobs {jobs} sends the network to worker processes and it cannot be pickled ({error}); "
            "define it in an importable module, or use --jobs 1"
        ) from None
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")
    epochs = context.Value("q", 0)  # every worker's epochs, read by the progress bar
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=context,
        initializer=_start_worker,
        initargs=(training, threads, epochs),
    )
    finished = False
    try:
        futures = [pool.submit(_score_in_worker, i, params) for i, params in enumerate(inits)]
        total = len(futures) * training.recipe.epochs
        with tqdm(
            total=total, desc=f"evaluate ({jobs} jobs)", unit="epoch", disable=not progress
        ) as bar:
            pending = set(futures)
            bar.set_postfix(networks=f"0/{len(futures)}", refresh=False)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # the first failure stops here
                if done:  # refresh=False: the bar redraws at tqdm's own rate, not every poll
                    networks = f"{len(futures) - len(pending)}/{len(futures)}"
                    bar.set_postfix(networks=networks, refresh=False)
                bar.update(epochs.value - bar.n)
        finished = True
        return [future.result() for future in futures]
    except BrokenProcessPool as error:
        raise RuntimeError(
            f"a --jobs {jobs} worker process died ({error}): if a script of yours calls this, guard its entry "
            "with `if __name__ == '__main__':` (workers re-import it); or use --jobs 1"
        ) from None
    finally:
        if not finished:
            # ProcessPoolExecutor has no public way to stop a running task (Python 3.14 adds
            # terminate_workers); a ResNet-18 would otherwise train on for many minutes.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=finished, cancel_futures=True)


def evaluate_run(cfg: EvaluateConfig) -> EvalResult:
    """``datadistill evaluate``: a run folder with the protocol it was distilled for, or ``cfg.protocol``.

    The replay protocol trains the run's own network (``cfg.model`` and ``cfg.epochs`` belong to the dataset
    protocol and are refused with it); the dataset protocol uses ``evaluate_as_dataset``.
    """
    _check_json(cfg.json)
    data = DistilledData.load(cfg.run)
    protocol = cfg.protocol or data.manifest.get("protocol") or "replay"
    if protocol == "dataset":
        return evaluate_as_dataset(
            data,
            model=cfg.model,
            models=cfg.models,
            epochs=cfg.epochs,
            augment=cfg.augment,
            data_dir=cfg.data_dir,
            device=cfg.device,
            json_path=cfg.json,
            jobs=cfg.jobs,
        )
    dataset_only = {
        "--model": cfg.model is not None,
        "--epochs": cfg.epochs is not None,
        "--jobs": cfg.jobs != 1,
    }
    for flag, given in dataset_only.items():
        if given:
            raise ValueError(
                f"{flag} applies to the dataset protocol: add --protocol dataset, or drop {flag} to "
                "replay the set on the network it was distilled for"
            )
    if cfg.augment != "none":
        raise ValueError("--augment applies to the dataset protocol: add --protocol dataset")
    return evaluate(
        data, models=cfg.models, data_dir=cfg.data_dir, device=cfg.device, json_path=cfg.json
    )
