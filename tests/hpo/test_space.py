"""Search spaces: the shipped YAML files, suggestions mapped onto recipe configs, one-line errors,
and the retrain command read back by the real training CLI."""

import argparse

import pytest
import yaml

from jetlab.errors import JetlabError
from jetlab.hpo.recipes import apply_params, check_space, recipe_for, train_command
from jetlab.hpo.space import SearchSpace, packaged_spaces
from jetlab.training.generator import GeneratorConfig
from jetlab.training.tagger import TaggerTrainConfig

optuna = pytest.importorskip("optuna", reason="pip install 'jetlab[hpo]'")


def test_jedinet_space_is_the_papers_and_holds_its_best_setting():
    from jetlab.models.jedinet import PAPER_HYPERPARAMETERS

    space = SearchSpace.packaged("jedinet")
    by_key = {(p.key, p.when): p for p in space.params}
    for activation in ("f_r_activation", "f_o_activation", "phi_c_activation"):
        assert set(by_key[(activation, ())].choices) == {"relu", "elu", "selu"}
    assert set(by_key[("optimizer", ())].choices) == {"adam", "adadelta"}
    assert {p.when for p in space.params if p.key == "lr"} == {(("optimizer", "adam"),), (("optimizer", "adadelta"),)}
    for hidden, d_e, d_o, *_activations in PAPER_HYPERPARAMETERS["flat"].values():
        for key, value in (("hidden", hidden), ("edge_dim", d_e), ("object_dim", d_o)):
            p = by_key[(key, ())]
            assert p.kind == "int" and p.low <= value <= p.high and (value - p.low) % (p.step or 1) == 0, key


@pytest.mark.parametrize("model", sorted(packaged_spaces()))
def test_every_shipped_space_fits_its_model(model):
    space = SearchSpace.packaged(model)
    check_space(space, recipe_for(model), model, 30)
    assert SearchSpace.from_dict(space.to_dict()) == space  # what a study stores reads back the same


def test_suggestions_become_the_config_a_trial_trains_with():
    space = SearchSpace.packaged("dnn")
    trial = optuna.trial.FixedTrial({"optimizer": "adadelta", "lr|adadelta": 0.5, "hidden": "[32, 32]",
                                     "activation": "elu", "dropout": 0.25})
    chosen = space.suggest(trial)
    assert chosen == {"settings": {"optimizer": "adadelta", "lr": 0.5},
                      "hparams": {"hidden": [32, 32], "activation": "elu", "dropout": 0.25}}
    base = TaggerTrainConfig(model="dnn", epochs=3, hparams={"dropout": 0.1})
    config = apply_params(base, recipe_for("dnn"), chosen)
    assert (config.optimizer, config.lr, config.epochs) == ("adadelta", 0.5, 3)
    assert config.hparams == {"hidden": [32, 32], "activation": "elu", "dropout": 0.25}
    assert base.hparams == {"dropout": 0.1}  # the study's fixed config is untouched
    assert space.decode(trial.params) == chosen  # a finished trial's stored values read back the same


def test_a_searched_lr_is_gems_step_size_under_gem():
    chosen = {"settings": {"optimizer": "adam", "lr": 0.02}, "hparams": {}}
    config = apply_params(TaggerTrainConfig(model="dnn", strategy="gem"), recipe_for("dnn"), chosen)
    assert (config.gem_lr, config.lr) == (0.02, TaggerTrainConfig().lr)  # and validate() did not refuse it


def test_generator_network_options_go_to_their_network():
    chosen = {"settings": {"lr_g": 2e-4}, "hparams": {"generator.hidden": 48, "discriminator.n_layers": 3}}
    config = apply_params(GeneratorConfig(model="gan"), recipe_for("gan"), chosen)
    assert config.lr_g == 2e-4
    assert config.generator_options == {"hidden": 48} and config.discriminator_options == {"n_layers": 3}
    flow = apply_params(GeneratorConfig(model="flow"), recipe_for("flow"),
                        {"settings": {"ode_steps": 6}, "hparams": {"flow.hidden": 32, "flow.n_layers": 2}})
    assert flow.ode_steps == 6 and flow.flow_options == {"hidden": 32, "n_layers": 2}
    with pytest.raises(JetlabError, match="flow: unknown hyperparameter"):
        apply_params(GeneratorConfig(model="flow"), recipe_for("flow"), {"hparams": {"flow.width": 32}})
    with pytest.raises(JetlabError, match="kl_weight is a vae setting"):
        apply_params(GeneratorConfig(model="flow"), recipe_for("flow"), {"settings": {"kl_weight": 0.1}})


@pytest.mark.parametrize("text, message", [
    ("settings: {lr: {type: float, low: 1e-3, high: 1e-4}}", "low must not exceed high"),
    ("settings: {lr: {type: float, low: 0, high: 1, log: true}}", "log range needs low > 0"),
    ("settings: {lr: {low: 1, high: 2}}", "type must be int or float"),
    ("settings: {lr: {type: int, low: 1.5, high: 2}}", "integer low, high"),
    ("settings: {optimizer: {choices: []}}", "non-empty list"),
    ("settings: {lr: [{when: {optimizer: adam}, type: float, low: 1, high: 2}]}", "when refers to optimizer"),
    ("settings: {lr: {type: float, low: 1, high: 2, grid: 3}}", "unknown field(s) grid"),
    ("hyper: {}", "unknown section(s) hyper"),
    ("settings: {}", "tunes nothing"),
])
def test_bad_spaces_are_one_line_errors(text, message):
    with pytest.raises(JetlabError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        SearchSpace.from_dict(yaml.safe_load(text), "s.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("s.yaml: ")


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("settings:\n  lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n")
    (param,) = SearchSpace.load(path).params
    assert (param.low, param.high) == (1e-4, 1e-2)


@pytest.mark.parametrize("model, text, message", [
    ("dnn", "settings: {learning_rate: {type: float, low: 0.1, high: 1}}", "settings.learning_rate is not a tagger"),
    ("dnn", "hparams: {width: {type: int, low: 1, high: 2}}", "hparams.width is not a dnn hyperparameter"),
    ("gan", "hparams: {hidden: {type: int, low: 1, high: 2}}", "NET.KEY with NET one of"),
    ("gan", "settings: {lr: {type: float, low: 1e-4, high: 1e-2}}", "a GAN trains with lr_g and lr_d"),
    ("jedinet", "settings: {model: {choices: [dnn, gru]}}", "settings.model is not a tagger setting"),
])
def test_spaces_naming_what_the_model_lacks_are_refused(model, text, message):
    with pytest.raises(JetlabError, match=message):
        check_space(SearchSpace.from_dict(yaml.safe_load(text), "s.yaml"), recipe_for(model), model, 30)


def test_retrain_command_is_read_back_by_the_tagger_cli_as_the_same_config(capsys):
    from jetlab.cli.main import build_parser
    from jetlab.cli.tagger import build_train_config

    config = apply_params(TaggerTrainConfig(model="jedinet", data="/data/jets", epochs=7, schedule="cosine",
                                            num_workers=2),
                          recipe_for("jedinet"),
                          {"settings": {"optimizer": "adadelta", "lr": 0.731},
                           "hparams": {"hidden": 35, "f_r_activation": "selu"}})
    command = train_command(config, recipe_for("jedinet"), "runs/best")
    words = command.split()
    assert words[:3] == ["jetlab", "tagger", "train"]
    args = build_parser().parse_args(words[1:])
    assert isinstance(args, argparse.Namespace)
    rebuilt, out = build_train_config(args)
    assert out == "runs/best" and rebuilt == config
    # settings whose flag is not their name are written with today's flag, not a former spelling
    assert "--lr-schedule cosine" in command and "--workers 2" in command and capsys.readouterr().err == ""
