"""The one spec schema: YAML + overrides, refusals naming the dotted key."""

import pytest

from llmft.config import (
    CurationSpec, DeploymentSpec, SweepSpec, TrainingSpec, load_spec, spec_digest, spec_from_dict,
)
from llmft.errors import SpecError

TRAIN = {"kind": "training", "name": "r1", "tenant": "acme", "base_model": "tiny", "dataset": "tickets-curated"}


def write(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return p


def test_loads_with_defaults_and_overrides(tmp_path):
    import yaml

    p = write(tmp_path, yaml.safe_dump(TRAIN))
    spec = load_spec(p, ["lora.r=16", "optim.learning_rate=1e-4", "lora.target_modules=[q_proj, v_proj]",
                         "data.packing=true"], expect=TrainingSpec)
    assert spec.lora.r == 16 and spec.optim.learning_rate == 1e-4
    assert spec.lora.target_modules == ["q_proj", "v_proj"] and spec.data.packing is True
    assert load_spec(p).name == "r1"  # kind-dispatched


@pytest.mark.parametrize("override, path", [
    ("lora.r=0", "lora.r"),
    ("optim.learning_rate=-0.1", "optim.learning_rate"),
    ("lora.bogus=1", "lora.bogus"),
    ("resources.num_workers=two", "resources.num_workers"),
    ("privacy.delta=2", "privacy.delta"),
    ("method=sgd", "method"),
])
def test_bad_values_are_refused_with_dotted_path(tmp_path, override, path):
    import yaml

    p = write(tmp_path, yaml.safe_dump(TRAIN))
    with pytest.raises(SpecError) as err:
        load_spec(p, [override], expect=TrainingSpec)
    assert f"{path}:" in str(err.value)


def test_split_must_sum_to_one():
    with pytest.raises(SpecError, match=r"split: .*sum to 1"):
        spec_from_dict(CurationSpec, {"tenant": "acme", "source": "raw", "output": "cur",
                                      "split": {"train": 0.8, "validation": 0.1, "test": 0.2}})


def test_unknown_top_level_key_and_wrong_kind(tmp_path):
    import yaml

    p = write(tmp_path, yaml.safe_dump({**TRAIN, "epochz": 3}))
    with pytest.raises(SpecError, match="epochz: unknown key"):
        load_spec(p)
    with pytest.raises(SpecError, match="expected a curation spec"):
        load_spec(p, expect=CurationSpec)


@pytest.mark.parametrize("content, message", [
    (b"", "empty spec file"),
    (b"kind: training\nname: [unclosed\n", "malformed YAML at line"),
    (b"- a\n- b\n", "must be a YAML mapping"),
    (b"name: caf\xe9\n", "not UTF-8"),
    (b"kind: nonsense\n", "kind: must be one of"),
])
def test_bad_files_give_one_clear_error(tmp_path, content, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write(tmp_path, content))


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_malformed_override():
    with pytest.raises(SpecError, match="expected KEY.PATH=VALUE"):
        spec_from_dict(TrainingSpec, TRAIN, ["lora.r"])


def test_sweep_keys_must_be_training_fields():
    base = {"name": "s", "training": TRAIN, "search_space": {"optim.lr": {"type": "uniform", "low": 0, "high": 1}}}
    with pytest.raises(SpecError, match="search_space.*optim.lr"):
        spec_from_dict(SweepSpec, base)
    ok = spec_from_dict(SweepSpec, {**base, "search_space": {"lora.r": {"type": "choice", "values": [4, 8]}}})
    assert ok.search_space["lora.r"].values == [4, 8]


def test_deployment_refuses_port_in_ray_worker_range():
    with pytest.raises(SpecError, match="http: .*worker port range"):
        spec_from_dict(DeploymentSpec, {"name": "d", "tenant": "acme", "base_model": "tiny", "model": "m@prod",
                                        "http": {"port": 12000}})


def test_digest_is_stable_and_sensitive():
    a = spec_from_dict(TrainingSpec, TRAIN)
    assert spec_digest(a) == spec_digest(spec_from_dict(TrainingSpec, dict(TRAIN)))
    assert spec_digest(a) != spec_digest(spec_from_dict(TrainingSpec, TRAIN, ["seed=1"]))


def test_every_field_is_documented():
    from llmft.config import SPEC_KINDS

    seen = set()

    def walk(model):
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            for candidate in (ann, *getattr(ann, "__args__", ())):
                if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                    walk(candidate)

    for model in SPEC_KINDS.values():
        walk(model)
    assert len(seen) > 15
