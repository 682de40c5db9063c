"""Study files: defaults, overrides and one clear error per malformed file."""
from __future__ import annotations

from pathlib import Path

import pytest

from archlab.core.errors import SpecError
from archlab.measure.recipes import Budget
from archlab.search.study import is_study, study_from_dict


@pytest.fixture()
def base(tmp_path: Path) -> tuple[dict, Path]:
    (tmp_path / "space.yaml").write_text("name: tiny\n")
    return {"name": "tiny", "space": "space.yaml", "dataset": {"name": "digits", "img_size": 16}}, \
        tmp_path / "study.yaml"


def test_defaults(base):
    data, file = base
    study = study_from_dict(data, file=file)
    assert study.metric_names == ["top1", "latency_ms"]
    assert study.directions == ["maximize", "minimize"]
    assert study.sampler == "nsga2" and study.trials == 16 and study.execution.concurrent == 2
    assert study.space == file.parent / "space.yaml"
    assert study.budget == Budget(epochs=2.0)
    assert study.budget.to_dict() == {"epochs": 2.0, "images": None, "seconds": None}
    assert is_study(data)


def test_overrides(base):
    data, file = base
    study = study_from_dict(data, file=file).with_overrides(trials=3, timeout=60, address="127.0.0.1:6379")
    assert (study.trials, study.timeout, study.execution.address) == (3, 60, "127.0.0.1:6379")


@pytest.mark.parametrize("change, message", [
    ({"objectivs": []}, "objectivs is not a known key (did you mean 'objectives'?)"),
    ({"objectives": [{"name": "top5"}]}, "objectives[0].name must be one of top1, latency_ms, params, macs"),
    ({"objectives": [{"name": "top1", "direction": "up"}]}, "objectives[0].direction must be maximize or minimize"),
    ({"sampler": {"name": "nsgaii"}}, "sampler.name must be an Optuna sampler (did you mean"),
    ({"trials": 0}, "trials must be >= 1, got 0"),
    ({"trials": "many"}, "trials must be an integer, got 'many'"),
    ({"dataset": {"name": "fashion"}}, "dataset.name must be one of"),
    ({"budget": {"epoch": 2}}, "budget.epoch is not a known key"),
    ({"budget": {"epochs": -1}}, "budget.epochs must be > 0, got -1"),
    ({"execution": {"gpus_per_trial": -0.5}}, "execution.gpus_per_trial must be >= 0"),
    ({"latency": {"device": "tpu"}}, "latency.device must be cpu, cuda or cuda:N, got 'tpu'"),
    ({"space": "missing.yaml"}, "space names a file that does not exist"),
    ({"recipe": "modren"}, "recipe unknown recipe 'modren' (did you mean 'modern'?)"),
    ({"storage": "optuna.db"}, "storage must be an Optuna storage URL"),
    ({"name": "a b"}, "name must be letters, digits"),
    ({"constraints": {"max_flops": 1}},
     "constraints.max_flops is not a known key (archlab counts multiply-accumulates: did you mean 'max_macs'?)"),
])
def test_errors_name_file_path_rule_and_value(base, change, message):
    data, file = base
    with pytest.raises(SpecError) as err:
        study_from_dict({**data, **change}, file=file)
    assert str(err.value).startswith(f"{file}: ")
    assert message in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    ({"trials": 0}, "trials must be >= 1, got 0"),
    ({"timeout": 0}, "timeout must be >= 1, got 0"),
    ({"timeout": float("nan")}, "timeout must be a finite number"),
    ({"concurrent": 0}, "execution.concurrent must be >= 1, got 0"),
])
def test_overrides_obey_the_files_rules(base, overrides, message):
    data, file = base
    with pytest.raises(SpecError, match=message):
        study_from_dict(data, file=file).with_overrides(**overrides)


def test_a_study_writes_itself_back(base):
    data, file = base
    study = study_from_dict({**data, "sampler": {"name": "nsga2", "args": {"population_size": 4}},
                             "constraints": {"max_macs": "50M"}, "recipe": {"base": "proxy", "lr": "4e-2"}},
                            file=file)
    doc = study.to_dict()
    assert doc["sampler"] == {"name": "nsga2", "args": {"population_size": 4}} and "sampler_args" not in doc
    assert doc["constraints"] == {"max_macs": 50e6} and "file" not in doc
    again = study_from_dict(doc, file=file)
    assert again == study and again.file == file
    assert "space: space.yaml" in study.to_yaml(space="space.yaml")
