"""config.py: presets load into a validated DistillConfig; bad keys and values fail with one clear line."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from datadistill.config import (
    DistillConfig,
    list_presets,
    load_config,
    parse_assignments,
    save_config,
)


@pytest.mark.parametrize("name", list_presets())
def test_every_shipped_preset_loads_and_validates(name):
    cfg = load_config(DistillConfig, name)
    assert isinstance(cfg, DistillConfig)
    assert cfg.steps >= 1 and cfg.epochs >= 1 and cfg.iterations >= 1


def test_preset_values_are_read_and_overrides_win():
    cfg = load_config(DistillConfig, "mnist_fixed_10", {"iterations": 7, "lr": None})
    assert (cfg.dataset, cfg.init, cfg.steps, cfg.epochs) == ("mnist", "fixed", 1, 3)
    assert cfg.iterations == 7  # an override replaces the preset's 2000
    assert cfg.lr == 0.01  # a None override is skipped, the preset's value stays


@pytest.mark.parametrize(
    "preset", [p for p in list_presets() if load_config(DistillConfig, p).schedule == "step"]
)
def test_a_step_preset_switches_to_cosine_without_its_step_settings(preset):
    cfg = load_config(DistillConfig, preset, {"schedule": "cosine"})
    assert (cfg.schedule, cfg.decay_every, cfg.decay_factor) == ("cosine", None, 0.5)
    # the same schedule again keeps the preset's decay, and a decay given beside cosine is still refused
    same = load_config(DistillConfig, preset, {"schedule": "step"})
    assert same.decay_every == load_config(DistillConfig, preset).decay_every
    with pytest.raises(ValueError, match="add --schedule step"):
        load_config(DistillConfig, preset, {"schedule": "cosine", "decay_every": 10})


@pytest.mark.parametrize(
    ("protocol", "given", "expected"),
    [
        ("replay", None, "xavier"),  # the paper's
        ("dataset", None, "default"),  # the field's evaluation draws PyTorch's default init
        ("dataset", "xavier", "xavier"),  # an explicit scheme is kept
    ],
)
def test_init_scheme_follows_the_protocol_unless_given(protocol, given, expected):
    cfg = load_config(
        DistillConfig, None, {"protocol": protocol, "init": "random", "init_scheme": given}
    )
    assert cfg.init_scheme == expected


def test_unknown_key_error_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: digits\nitertions: 5\n")
    with pytest.raises(ValueError) as err:
        load_config(DistillConfig, path)
    message = str(err.value)
    assert "itertions" in message and str(path) in message
    assert "iterations" in message  # the close match is suggested


def test_unknown_preset_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="mnist_fixed_10"):
        load_config(DistillConfig, "mnist_fixd_10")


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"steps": 0}, "--steps"),
        ({"lr": -1.0}, "--lr"),
        ({"meta_grad": "forward"}, "--meta-grad"),
        ({"init_images": "zeros"}, "--init-images"),
        ({"label_targets": "free"}, "--learn-labels"),  # free targets need learned labels
        ({"source_weight": 3.0}, "--objective poison"),
        ({"betas": (0.9, 1.5)}, "--betas"),
        ({"batch_per_rank": "on"}, "--batch-per-rank"),
        (
            {"init": "fixed", "pretrained": "pools/mnist"},
            "--pretrained is a pool for --init pretrained",
        ),
    ],
)
def test_validate_names_the_bad_setting(overrides, flag):
    with pytest.raises(ValueError, match=flag):
        load_config(DistillConfig, None, overrides)


def test_saved_config_loads_back_to_the_same_settings(tmp_path):
    cfg = load_config(DistillConfig, "digits", {"iterations": 3, "seed": 5})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    again = load_config(DistillConfig, path)
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)


def test_assignments_parse_as_the_settings_types_and_load():
    items = [
        "lr=1e-3",
        "betas=[0.9, 0.999]",
        "learn-labels=true",
        "model=convnet-32",
        "window=null",
    ]
    items += ["label_targets=free", "inner_augment=none", "time_limit=6"]
    overrides = parse_assignments(DistillConfig, items)
    assert overrides == {
        "lr": 0.001,  # JSON first: YAML 1.1 would keep 1e-3 a string
        "betas": (0.9, 0.999),
        "learn_labels": True,
        "model": "convnet-32",  # no string default, not JSON: read as YAML
        "window": None,
        "label_targets": "free",
        "inner_augment": "none",
        "time_limit": 6,
    }
    cfg = load_config(DistillConfig, "mnist_fixed_quick", overrides)
    assert (cfg.lr, cfg.betas, cfg.model) == (0.001, (0.9, 0.999), "convnet-32")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("iterations", "KEY=VALUE"),
        ("itertions=5", "did you mean 'iterations'"),
    ],
)
def test_bad_assignment_is_one_line_naming_it(item, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_assignments(DistillConfig, [item])
    assert "\n" not in str(err.value) and item in str(err.value)


@pytest.mark.parametrize(
    "name, value", [("batch_per_rank", "yes"), ("learn_labels", 1), ("vmap_inits", "maybe")]
)
def test_a_switch_set_to_anything_but_true_or_false_is_refused_in_one_line(name, value):
    flag = name.replace("_", "-")
    with pytest.raises(
        ValueError, match=rf"^--{flag} is a switch: true or false, got .* --no-{flag}\)$"
    ):
        load_config(DistillConfig, "mnist_10_per_class", {name: value})
    assert load_config(DistillConfig, "mnist_10_per_class", {name: True}).__dict__[name] is True


def test_a_switch_in_a_yaml_config_is_checked_too(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: digits\nbatch_per_rank: 2\n")
    with pytest.raises(ValueError, match="--batch-per-rank is a switch"):
        load_config(DistillConfig, path)
    path.write_text("dataset: digits\nbatch_per_rank: true\n")
    assert load_config(DistillConfig, path).batch_per_rank


@pytest.mark.parametrize(
    "line, message",
    [
        ("seed: 1.5", "--seed must be a whole number, got 1.5"),
        ("time_limit: abc", "--time-limit must be a number, got 'abc'"),
        ("init_images: 5", "--init-images must be text, got 5"),
        ("betas: 0.5", r"--betas takes a list, e.g. \[0.9, 0.999\], got 0.5"),
        (
            "lr: [",
            r"is not valid YAML \(expected the node content.* at line 3\); fix or replace it",
        ),
    ],
)
def test_a_yaml_value_of_the_wrong_kind_is_refused_in_one_line(tmp_path, line, message):
    path = tmp_path / "run.yaml"
    path.write_text(f"dataset: digits\n{line}\n")
    with pytest.raises(ValueError, match=message) as raised:
        load_config(DistillConfig, path)
    assert "\n" not in str(raised.value)
    path.write_text(
        "dataset: digits\nlr: 1\nprotocol: dataset\ninit: random\nextra_models: lenet\nbetas: [0.9, 0.99]\n"
    )
    assert load_config(DistillConfig, path).lr == 1  # an int is a number
    path.write_bytes(b"\x00\xff\xfe")
    with pytest.raises(ValueError, match="is not a text file"):
        load_config(DistillConfig, path)


def test_model_help_names_the_default_networks_the_setting_picks():
    from datadistill.setting import DEFAULT_MODEL_FOR, default_model

    help_text = {f.name: f.metadata["help"] for f in dataclasses.fields(DistillConfig)}["model"]
    for dataset, model in DEFAULT_MODEL_FOR.items():
        assert model in help_text and dataset in help_text
    assert default_model("digits", (1, 8, 8)) == "mlp"
    assert default_model("./mine", (1, 8, 8)) == "mlp"
    assert default_model("./mine", (1, 12, 12)) == "lenet"


def test_baselines_only_takes_the_command_lines_comma_separated_text_from_python():
    from datadistill.config import BaselinesConfig

    cfg = BaselinesConfig(only="kmeans, knn-random").validate()
    assert cfg.only == ("kmeans", "knn-random")
    with pytest.raises(ValueError, match="kmenas"):
        BaselinesConfig(only="kmeans,kmenas").validate()


@pytest.mark.parametrize(
    "module, entry, typo, meant",
    [
        ("datadistill.distill", "distill", "iteration", "iterations"),
        ("datadistill.experiments.baselines", "run_baselines", "onlyy", "only"),
        ("datadistill.experiments.pretrain", "pretrain", "epoch", "epochs"),
        ("datadistill.experiments.attack", "run_attack", "source", "source_class"),
    ],
)
def test_an_unknown_python_keyword_is_one_line_naming_the_closest_setting(
    module, entry, typo, meant, tmp_path, monkeypatch
):
    # from Python, as a YAML key or flag: refused before any data is read or folder written
    monkeypatch.chdir(tmp_path)
    call = getattr(importlib.import_module(module), entry)
    with pytest.raises(
        ValueError,
        match=rf"'{typo}' is not one of the \w+Config settings \(did you mean '{meant}'\?\)",
    ):
        call(**{typo: 3})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(objective="bogus"), "--objective must be task or poison"),
        (dict(objective="poison"), "needs --source-class K and --target-class T"),
        (dict(objective="poison", source_class=1, target_class=1), "both 1: poisoning a class"),
        (dict(source_class=1), "add --objective poison, or drop them"),
    ],
)
def test_the_objective_and_its_classes_are_checked_before_anything_runs(settings, message):
    with pytest.raises(ValueError, match=message):
        DistillConfig(dataset="digits", **settings).validate()
    DistillConfig(dataset="digits", objective="poison", source_class=1, target_class=2).validate()


@pytest.mark.parametrize("seed", [-1, 10**9, 99999999999999999999999])
@pytest.mark.parametrize(
    "command",
    ["DistillConfig", "BaselinesConfig", "LinearConfig", "PretrainConfig", "AttackConfig"],
)
def test_every_commands_seed_is_a_whole_number_in_range(command, seed):
    """A seed torch cannot take (or a negative one, accepted before by baselines and pretrain) is refused
    up front, in the same words by every command."""
    import datadistill.config as config

    required = {
        "PretrainConfig": {"dataset": "digits", "model": "mlp", "out": "pool", "count": 2},
        "AttackConfig": {
            "dataset": "digits",
            "pretrained": "pool",
            "source_class": 0,
            "target_class": 1,
        },
    }.get(command, {})
    with pytest.raises(ValueError, match=r"--seed must be a whole number in \[0, 1e9\)"):
        load_config(getattr(config, command), None, {**required, "seed": seed})


def test_learning_nothing_is_refused_naming_both_flags():
    with pytest.raises(ValueError, match="--learn lrs with --no-learn-lr leaves nothing to learn"):
        load_config(DistillConfig, None, {"learn": "lrs", "learn_lr": False})
    load_config(DistillConfig, None, {"learn": "lrs", "learn_lr": False, "learn_labels": True})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"init": None}, "--init needs a value, got None"),
        ({"betas": 0.9}, r"--betas takes a list, e.g. \[0.9, 0.999\], got 0.9"),
        ({"betas": (0.9, "a")}, r"--betas takes a list of numbers, got \(0.9, 'a'\)"),
        ({"time_limit": "5"}, "--time-limit must be a number, got '5'"),
        ({"learn_labels": "no"}, "--learn-labels is a switch: true or false, got 'no'"),
        ({"out": 123}, "--out must be text, got 123"),
        ({"lr": True}, "--lr must be a number, got True"),
        ({"config": "x.yaml"}, "a DistillConfig is passed as the first argument, cfg="),
        (
            {"inner_optimizer": "adam"},
            "--inner-optimizer sets the dataset protocol's inner training",
        ),
        ({"window": 5}, "--window sets the dataset protocol's inner training"),
    ],
)
def test_python_callers_get_the_same_one_line_refusals(settings, message, tmp_path):
    """distill(**settings) checks every setting's kind as YAML and the command line do, before any folder."""
    from datadistill import distill

    with pytest.raises(ValueError, match=message):
        distill(
            dataset="digits",
            iterations=1,
            progress=False,
            **{"out": str(tmp_path / "r"), **settings},
        )
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="the first argument is a DistillConfig .*got a str"):
        distill("digits")


def test_a_path_setting_may_be_a_path_and_is_kept_as_text(tmp_path):
    cfg = DistillConfig(out=tmp_path / "run").validate()
    assert cfg.out == str(tmp_path / "run")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"resize": 0}, "--resize must be a positive integer"),
        ({"pad": -1}, "--pad must be a whole number of pixels >= 0"),
        ({"channels": 0}, r"--channels \(channels=\) must be 1 \(gray\) or 3 \(RGB\)"),
        ({"channels": 2}, r"--channels \(channels=\) must be 1 \(gray\) or 3 \(RGB\)"),
        ({"test_fraction": 1.5}, "--test-fraction must be a number between 0 and 1"),
    ],
)
@pytest.mark.parametrize(
    "command", ["DistillConfig", "BaselinesConfig", "PretrainConfig", "AttackConfig"]
)
def test_every_command_that_reads_data_takes_the_same_data_options(command, setting, message):
    """A user's data may need --resize/--pad/--channels/--test-fraction wherever it can be read (baselines
    and attack named flags they lacked); each is checked in the same words by every command."""
    import datadistill.config as config

    required = {
        "PretrainConfig": {"dataset": "digits", "model": "mlp", "out": "pool", "count": 2},
        "AttackConfig": {
            "dataset": "digits",
            "pretrained": "pool",
            "source_class": 0,
            "target_class": 1,
        },
    }.get(command, {})
    cls = getattr(config, command)
    load_config(
        cls, None, {**required, "resize": 12, "pad": 2, "channels": 1, "test_fraction": 0.3}
    )
    with pytest.raises(ValueError, match=message):
        load_config(cls, None, {**required, **setting})
