"""Config errors in one place: every composed config is checked, and a bad one is refused with
a message naming the key, the value and the rule (exit 2 where a stage or tool reads it). Covers
the root config, estimator params, governance gates, privacy detectors and plug-ins, and the
params a stage may read (dvc.yaml's `params:`)."""

from __future__ import annotations

import copy
import shutil
import sys

import pytest
import yaml
from pydantic import ValidationError

from pipeline.config import validate
from pipeline.privacy import BUILTIN_DETECTORS, PrivacyConfig, build_detectors
from pipeline.runtime.errors import ConfigError
from pipeline.runtime.runner import ParamsView
from tests.conftest import ROOT, composed, run, stage


@pytest.fixture(scope="module")
def base() -> dict:
    return composed()


def _err(raw: dict) -> str:
    with pytest.raises(ConfigError) as e:
        validate(raw)
    return str(e.value)


@pytest.mark.parametrize("overrides", [(), ("data=german",)])
def test_shipped_compositions_validate(overrides):
    cfg = validate(composed(*overrides))
    assert cfg.data.name == (overrides[0].split("=")[1] if overrides else "adult")


def test_unknown_key_is_named(base):
    raw = copy.deepcopy(base)
    raw["split"]["sede"] = 3
    msg = _err(raw)
    assert "split.sede" in msg and "unknown key" in msg


def test_unknown_key_in_column_spec(base):
    raw = copy.deepcopy(base)
    raw["data"]["columns"]["age"]["maximum"] = 3
    assert "data.columns.age.maximum: unknown key" in _err(raw)


def test_wrong_type_names_value_and_expectation(base):
    raw = copy.deepcopy(base)
    raw["split"]["train"] = "lots"
    msg = _err(raw)
    assert "split.train" in msg and "'lots'" in msg and "number" in msg


def test_ratios_must_sum_to_one(base):
    raw = copy.deepcopy(base)
    raw["split"]["train"] = 0.7
    msg = _err(raw)
    assert "split" in msg and "sum to 1" in msg and "0.7 + 0.2 + 0.2" in msg


def test_negative_seed(base):
    raw = copy.deepcopy(base)
    raw["seed"] = -1
    msg = _err(raw)
    assert "seed: got -1" in msg and "greater than or equal to 0" in msg


def test_sensitive_attribute_not_a_column(base):
    raw = copy.deepcopy(base)
    raw["data"]["sensitive"]["gender"] = {"column": "gender"}
    msg = _err(raw)
    assert "data.sensitive.gender.column" in msg and "'gender' is not a column" in msg


def test_stratify_by_must_be_sensitive(base):
    raw = copy.deepcopy(base)
    raw["split"]["stratify_by"] = ["education"]
    msg = _err(raw)
    assert "split.stratify_by" in msg and "'education'" in msg and "sex, race" in msg


def test_positive_label_must_be_a_category(base):
    raw = copy.deepcopy(base)
    raw["data"]["target"]["positive"] = ">50k"
    assert "data.target.positive: '>50k' is not one of" in _err(raw)


def test_bins_need_matching_labels():
    raw = composed("data=german")
    raw["data"]["sensitive"]["age_group"]["labels"] = ["young"]
    assert "data.sensitive.age_group" in _err(raw) and "len(bins)+1" in _err(raw)


def test_map_must_cover_every_category():
    raw = composed("data=german")
    del raw["data"]["sensitive"]["sex"]["map"]["A95"]
    msg = _err(raw)
    assert "data.sensitive.sex.map" in msg and "A95" in msg


def test_pii_column_cannot_be_feature(base):
    raw = copy.deepcopy(base)
    raw["data"]["columns"]["fnlwgt"]["pii"] = "drop"
    raw["data"]["features"].append("fnlwgt")
    assert "data.features: 'fnlwgt' is a PII column" in _err(raw)


def _with(base: dict, column: str, spec, feature: bool = True) -> dict:
    raw = copy.deepcopy(base)
    raw["data"]["columns"][column] = spec
    if feature and column not in raw["data"]["features"]:
        raw["data"]["features"].append(column)
    return raw


@pytest.mark.parametrize(("column", "spec", "needle"), [
    ("fnlwgt", {"type": "date"}, "data.features: 'fnlwgt' is a date, which is not a model input"),
    ("fnlwgt", {"type": "string"},
     "data.features: 'fnlwgt' is free text (type string) with no encoder; declare "
     "`columns.fnlwgt.text"),
    ("fnlwgt", "ignore", "data.features: 'fnlwgt' is declared `ignore` (never read)"),
    ("sex", "ignore", "'sex' is declared `ignore` (never read); give it a type"),
    ("fnlwgt", {"type": "int", "text": {"encoder": "tfidf"}},
     "`text` (an encoder) is only allowed for type string, not int"),
    ("fnlwgt", {"type": "string", "text": {"encoder": "bag"}},
     "data.columns.fnlwgt.text.encoder"),
])
def test_every_feature_type_works_or_is_refused_at_validation(base, column, spec, needle):
    assert needle in _err(_with(base, column, spec))


def test_the_target_cannot_be_a_feature(base):
    raw = copy.deepcopy(base)
    raw["data"]["features"].append("income")
    assert "data.features: the target 'income' cannot be a feature" in _err(raw)


def test_targets_and_features_as_users_have_them(base):
    """An int (0/1) or bool target with the favourable value as YAML writes it, a bool feature,
    free text with an encoder, an ignored column: all valid, the target read as text labels."""
    raw = _with(base, "fnlwgt", "ignore", feature=False)
    raw["data"]["features"].remove("capital-loss")
    raw = _with(raw, "capital-loss", {"type": "bool"})
    raw = _with(raw, "education", {"type": "string", "text": {"encoder": "hashing",
                                                              "max_features": 32}})
    raw["data"]["columns"]["income"] = {"type": "int", "min": 0, "max": 1}
    raw["data"]["target"] = {"column": "income", "positive": 1}
    spec = validate(raw).data
    assert spec.columns["income"].categories == ["0", "1"] and spec.target.positive == "1"
    assert "fnlwgt" in spec.ignored and "fnlwgt" not in spec.columns
    assert spec.file_columns.index("fnlwgt") == 2  # a headerless file's layout is kept
    raw["data"]["columns"]["income"] = {"type": "bool"}
    raw["data"]["target"] = {"column": "income", "positive": False}
    spec = validate(raw).data
    assert spec.columns["income"].categories == ["false", "true"]
    assert spec.target.positive == "false" and spec.columns["income"].replace["Yes"] == "true"
    raw["data"]["columns"]["income"] = {"type": "int", "min": 0}
    raw["data"]["target"] = {"column": "income", "positive": 1}
    assert "an int target needs whole-number `min` and `max`" in _err(raw)


def test_a_dataset_default_must_name_an_attribute_the_dataset_has():
    """Stratification and the mitigation attribute default to the first sensitive attribute;
    set explicitly, they must name one of the dataset's."""
    cfg = validate(composed("data=german", "mitigation=threshold_optimizer"))
    assert cfg.split.stratify_by == ["sex"] and cfg.mitigation.attribute == "sex"
    raw = composed("data=german", "mitigation=threshold_optimizer", "mitigation.attribute=race")
    assert "mitigation.attribute: 'race' is not a sensitive attribute of dataset 'german'" in (
        _err(raw))
    raw = composed("data=german", "split.stratify_by=[race]")
    assert "split.stratify_by: 'race' is not a sensitive attribute" in _err(raw)


def test_a_tool_given_an_unknown_dataset_names_the_ones_there_are(tmp_path):
    proc = run([sys.executable, "-m", "pipeline.champion", "data=nope"], ROOT, check=False)
    assert proc.returncode == 2 and "data=nope: no conf/data/nope.yaml (have: adult, german" in (
        proc.stderr), proc.stderr


def test_a_repeated_source_name_is_refused(base):
    raw = copy.deepcopy(base)
    names = list(raw["data"]["columns"])
    raw["data"]["source"]["names"] = [*names[:-1], names[0]]
    assert "data.source.names: names repeats ['age']" in _err(raw)


def test_entry_point_rejects_bad_override_before_work(tmp_path, pulled_data):
    proc = stage(ROOT, "split", "split.seed=-5", "split.train=lots",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr
    assert "split.seed: got -5" in proc.stderr and "split.train: got 'lots'" in proc.stderr
    assert not (tmp_path / "run" / "artifacts").exists()
    assert "Traceback" not in proc.stderr


def test_dvc_mode_rejects_bad_params_file(tmp_path):
    raw = composed()
    raw["split"]["test"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = stage(tmp_path, "split", "--dvc")
    assert proc.returncode == 2
    assert "sum to 1" in proc.stderr
    assert not (tmp_path / "artifacts").exists()


def test_dvc_mode_refuses_overrides(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(composed(), sort_keys=False))
    proc = stage(tmp_path, "split", "--dvc", "split.seed=3")
    assert proc.returncode == 2 and "dvc exp run -S" in proc.stderr


SPLIT_CONF = "conf/split/stratified.yaml"


@pytest.mark.parametrize(
    ("appended", "needles"),
    [
        pytest.param("train: 0.9\n", ["found duplicate key train", "line 9,"], id="duplicate-key"),
        pytest.param("  bad: indented\n", ["expected <block end>", "line 9,"],
                     id="syntax-error"),
    ],
)
def test_compose_reports_bad_yaml_in_conf_in_one_line(tmp_path, appended, needles):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    conf = tmp_path / SPLIT_CONF
    assert len(conf.read_text().splitlines()) == 8  # the line numbers below count on it
    conf.write_text(conf.read_text() + appended)
    (tmp_path / "params.yaml").write_text("previous: params\n")
    proc = run([sys.executable, "-m", "pipeline.compose"], tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert f"params.yaml not written: invalid YAML: {conf}, " in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr
    assert (tmp_path / "params.yaml").read_text() == "previous: params\n"


@pytest.mark.parametrize(
    ("appended", "needles"),
    [
        pytest.param("seed: 7\n", ["found duplicate key seed"], id="duplicate-key"),
        pytest.param("seed: [7\n", ["expected ',' or ']'"], id="syntax-error"),
    ],
)
def test_dvc_mode_rejects_bad_yaml_in_params_file(tmp_path, appended, needles):
    text = yaml.safe_dump(composed(), sort_keys=False) + appended
    (tmp_path / "params.yaml").write_text(text)
    proc = stage(tmp_path, "split", "--dvc")
    assert proc.returncode == 2, proc.stderr
    assert f"invalid YAML: {tmp_path / 'params.yaml'}, line " in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    ("model", "key", "value", "needle"),
    [
        ("rf", "max_features", 2.5, "a float in the range (0.0, 1.0]"),
        ("rf", "max_features", 0, "an int in the range [1, inf)"),
        ("rf", "max_features", -1, "Got -1 instead"),
        ("rf", "max_features", "foo", "a str among"),
        ("hgb", "l2_regularization", float("inf"), "a float in the range [0.0, inf)"),
    ],
)
def test_estimator_params_sklearn_refuses_are_config_errors(model, key, value, needle):
    raw = composed(f"model={model}")
    raw["model"][key] = value
    msg = _err(raw)
    assert f"model.{model}.{key}: The '{key}' parameter of " in msg and needle in msg
    assert len(msg.splitlines()) == 2  # one problem, one line


def test_stages_that_never_read_model_skip_only_sklearns_own_check(tmp_path):
    """Importing sklearn's constraint tables costs ~1 s a process, so ingest and split skip
    that one check (config.load.validate); pydantic's own bounds still hold there, and train,
    which reads `model`, refuses what fit() would (exit 2, before any work)."""
    raw = composed("model=rf")
    raw["model"]["max_features"] = 2.5  # within pydantic's types, refused by sklearn
    assert validate(raw, check_estimator=False).model.max_features == 2.5
    raw["model"]["n_estimators"] = 0  # the project's own bound: refused in every stage
    with pytest.raises(ConfigError, match="n_estimators"):
        validate(raw, check_estimator=False)
    raw["model"]["n_estimators"] = 10
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = stage(tmp_path, "train", "--dvc")
    assert proc.returncode == 2 and "model.rf.max_features" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    ("model", "key", "value"),
    [("rf", "n_estimators", 0), ("hgb", "learning_rate", 0.0), ("hgb", "max_leaf_nodes", 1),
     ("logreg", "C", 0.0), ("logreg", "C", -1.0)],
)
def test_estimator_params_out_of_range_are_config_errors(model, key, value):
    raw = composed(f"model={model}")
    raw["model"][key] = value
    assert f"model.{model}.{key}: got {value!r}" in _err(raw)


@pytest.mark.parametrize(
    ("model", "key", "value"),
    [("rf", "max_features", 2), ("rf", "max_features", 1.0), ("rf", "max_features", 0.5),
     ("rf", "max_features", None), ("rf", "max_features", "log2"), ("logreg", "C", 1e6)],
)
def test_estimator_params_sklearn_accepts_stay_valid(model, key, value):
    from pipeline.modelling.estimators import estimator

    raw = composed(f"model={model}")
    raw["model"][key] = value
    est = estimator(validate(raw).model, seed=0)
    assert est.get_params()[key] == value and type(est.get_params()[key]) is type(value)


def test_bad_estimator_param_stops_the_stage_before_work(tmp_path):
    run_dir = tmp_path / "run"
    proc = stage(ROOT, "train", "model=rf", "model.max_features=2.5", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stderr
    assert "model.rf.max_features: The 'max_features' parameter" in proc.stderr
    assert "Got 2.5 instead" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run_dir / "artifacts").exists()


def test_alias_names_are_distinct_and_the_server_resolves_the_champion(base):
    raw = copy.deepcopy(base)
    raw["registry"]["challenger_alias"] = raw["registry"]["champion_alias"]
    msg = _err(raw)
    assert "registry.challenger_alias" in msg and "must differ from champion_alias" in msg
    raw = copy.deepcopy(base)
    raw["serve"]["source"]["alias"] = "challenger"
    msg = _err(raw)
    assert "serve.source.alias" in msg and "the server serves the champion only" in msg


# Governance gates (conf/governance/)

DIR = {"metric": "disparate_impact_ratio", "min": 0.8, "attributes": ["sex"]}


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        (lambda g: g["fairness"].append({**DIR, "min": 1.5}),
         ["governance.fairness.5.min", "[0, 1]"]),
        (lambda g: g["fairness"].append({"metric": "statistical_parity_difference", "max": -0.1,
                                         "attributes": ["sex"]}),
         ["governance.fairness.5.max", "[0, 1]"]),
        (lambda g: g["performance"].append({"metric": "roc_auc", "min": 80}),
         ["governance.performance.2.min", "[0, 1]"]),
        (lambda g: g["fairness"].append({"metric": "happiness_ratio", "min": 0.8}),
         ["governance.fairness.5.metric", "'happiness_ratio' is not produced"]),
        (lambda g: g["fairness"].append({**DIR, "attributes": ["religion"]}),
         ["governance.fairness.5.attributes", "['religion'] not produced", "sex*race"]),
        (lambda g: g["performance"].append({"metric": "mcc", "min": 0.3}),
         ["governance.performance.2.metric", "'mcc' is not a performance metric"]),
        (lambda g: g.update(enforcement="maybe"),
         ["governance.enforcement: got 'maybe'", "'block' or 'warn'"]),
        (lambda g: g["fairness"][0].update(enforcement="sometimes"),
         ["governance.fairness.0.enforcement: got 'sometimes'"]),
        (lambda g: g["fairness"][0].update(min=0.8, max=0.9),
         ["exactly one of `min` or `max`"]),
    ],
)
def test_governance_config_errors(base, mutate, needles):
    raw = copy.deepcopy(base)
    mutate(raw["governance"])
    msg = _err(raw)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg}"


# Privacy detectors and plug-ins (conf/privacy/)


def test_extra_keys_forbidden():
    with pytest.raises(ValidationError, match="extra"):
        PrivacyConfig.model_validate({"builtin": ["email"], "bogus": 1})


def test_unknown_builtin_lists_valid_names():
    with pytest.raises(ValueError) as exc:
        build_detectors({"builtin": ["email", "passport"]})
    msg = str(exc.value)
    assert "passport" in msg
    for name in BUILTIN_DETECTORS:
        assert name in msg


def test_invalid_regex_names_the_rule():
    with pytest.raises(ValueError) as exc:
        PrivacyConfig.model_validate(
            {"custom": [{"name": "EMPLOYEE_ID", "pattern": "EMP-(\\d{6}"}]}
        )
    assert "EMPLOYEE_ID" in str(exc.value)
    assert "invalid regex" in str(exc.value)


def test_custom_rule_name_must_be_identifier():
    with pytest.raises(ValueError, match="must start with a letter"):
        PrivacyConfig.model_validate({"custom": [{"name": "bad name]", "pattern": "x"}]})


def test_plugin_without_finditer_is_rejected(plugin_module_path):
    with pytest.raises(TypeError, match="finditer"):
        build_detectors({"plugins": [{"_target_": f"{plugin_module_path}.NotADetector"}]})


def test_plugin_unknown_target():
    with pytest.raises(ValueError, match="no_such_module"):
        build_detectors({"plugins": [{"_target_": "no_such_module.Detector"}]})


def test_plugin_needs_target():
    with pytest.raises(ValueError, match="_target_"):
        PrivacyConfig.model_validate({"plugins": [{"name": "x"}]})


# A stage's params view (dvc.yaml `params:`)


@pytest.fixture(scope="module")
def config(base):
    return validate(base)


def test_an_undeclared_key_names_the_stage_and_the_dotted_key(config):
    view = ParamsView(config, ("data.target",), "split")
    with pytest.raises(AttributeError, match=r"stage 'split' reads params 'data.columns'"):
        view.data.columns  # noqa: B018
    with pytest.raises(AttributeError, match=r"params 'metrics'"):
        view.metrics  # noqa: B018


@pytest.mark.parametrize("override, message", [
    ("registry.promotion.metric=accuracy", "registry.promotion.metric: 'accuracy' is not "
                                           "produced by the metrics stage"),
    ("registry.promotion.metric=log_loss", "registry.promotion.greater_is_better: log_loss "
                                           "is better when lower"),
    ("registry.promotion.min_absolute_change=-0.01", "registry.promotion.min_absolute_change"),
    ("registry.promotion.min_absolute_change=lots", "registry.promotion.min_absolute_change"),
    ("registry.promotion.min_relative_change=2", "registry.promotion.min_relative_change"),
    ("registry.promotion.fairness.0.max_regression=-1",
     "registry.promotion.fairness.0.max_regression"),
    ("registry.promotion.fairness.0.metric=theil", "registry.promotion.fairness.0.metric: "
                                                   "'theil' is not produced"),
    ("registry.promotion.fairness.0.attributes=[age]",
     "registry.promotion.fairness.0.attributes: ['age'] not produced"),
])
def test_a_bad_promotion_policy_is_a_config_error_naming_the_key(override, message):
    from pipeline.config import validate

    raw = composed()
    key, value = override.split("=", 1)
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = [v.strip() for v in value.strip("[]").split(",")] if value.startswith("[") \
        else value
    with pytest.raises(ConfigError) as e:
        validate(raw)
    assert message in str(e.value), str(e.value)
