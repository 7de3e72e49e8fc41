import dataclasses

import pytest

from coderl_jax.train.config_util import ConfigOverrideError, apply_overrides, load_config_file


@dataclasses.dataclass(frozen=True)
class Inner:
    learning_rate: float = 1e-6
    schedule: str = "constant"
    clip_c: float | None = 3.0
    stop: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outer:
    steps: int = 10
    out_dir: str = "runs/x"
    remat: bool = False
    optim: Inner = Inner()


def test_overrides_are_typed_and_nested():
    cfg = apply_overrides(Outer(), ["steps=20", "optim.learning_rate=1e-5", "remat=true",
                                    "optim.clip_c=none", "optim.stop=['```', 'END']"])
    assert cfg.steps == 20 and isinstance(cfg.steps, int)
    assert cfg.optim.learning_rate == 1e-5 and cfg.remat is True and cfg.optim.clip_c is None
    assert cfg.optim.stop == ("```", "END")
    assert Outer().steps == 10  # the original is untouched


@pytest.mark.parametrize("override,message", [
    ("stepz=3", "unknown key 'stepz'.*did you mean steps"),
    ("steps=ten", "steps='ten': expected an int"),
    ("remat=maybe", "expected a bool"),
    ("optim.learning_rate=fast", "optim.learning_rate"),
    ("optim=3", "nested config"),
    ("steps", "expected key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigOverrideError, match=message):
        apply_overrides(Outer(), [override])


def test_config_file_loading(tmp_path):
    f = tmp_path / "exp.py"
    f.write_text("import dataclasses\n@dataclasses.dataclass\nclass C:\n    steps: int = 3\nconfig = C()\n")
    assert load_config_file(f).steps == 3
    (tmp_path / "bad.py").write_text("x = 1\n")
    with pytest.raises(ConfigOverrideError, match="bad.py: defines neither"):
        load_config_file(tmp_path / "bad.py")
    with pytest.raises(ConfigOverrideError, match="not found"):
        load_config_file(tmp_path / "missing.py")


def test_train_config_refuses_a_loss_temperature_other_than_the_rollouts():
    from coderl_jax.train.config import DataConfig, TrainConfig

    cfg = TrainConfig(model="tiny-random", out_dir="x", data=DataConfig(train_path="t.jsonl"))
    assert apply_overrides(cfg, ["rollout.temperature=1.5", "loss.temperature=1.5"]).validate()
    assert apply_overrides(cfg, ["rollout.temperature=0"]).validate()  # greedy rollouts: untempered log-probs
    with pytest.raises(ValueError, match="loss.temperature=1.0 must equal rollout.temperature=1.5"):
        apply_overrides(cfg, ["rollout.temperature=1.5"]).validate()


def test_the_optional_suite_is_set_through_its_fields():
    from coderl_jax.train.config import DataConfig, SuiteDataConfig, TrainConfig

    cfg = TrainConfig(model="tiny-random", data=DataConfig(suite=SuiteDataConfig()))
    cfg = apply_overrides(cfg, ["data.suite.seed=2", "data.suite.rl_reserve=0.25", "data.suite.train_split=sft"])
    assert (cfg.data.suite.seed, cfg.data.suite.rl_reserve, cfg.data.suite.train_split) == (2, 0.25, "sft")
    assert cfg.validate() and cfg.data.train_path == ""  # the suite fills it (train/data_setup.py)
    with pytest.raises(ConfigOverrideError, match="'suite' is not a nested config"):
        apply_overrides(TrainConfig(), ["data.suite.seed=2"])  # no suite to change


def test_the_sampler_copy_and_decode_loop_settings_are_validated():
    from coderl_jax.train.config import DataConfig, TrainConfig

    cfg = TrainConfig(model="tiny-random", out_dir="x", data=DataConfig(train_path="t.jsonl"))
    ok = apply_overrides(cfg, ["rollout.dtype=bfloat16", "rollout.decode_chunk=64", "rollout.decode_unroll=2"])
    assert ok.validate().rollout.decode_chunk == 64
    with pytest.raises(ValueError, match="rollout.dtype='float16'"):
        apply_overrides(cfg, ["rollout.dtype=float16"]).validate()
    with pytest.raises(ValueError, match="decode_chunk and rollout.decode_unroll must be >= 1"):
        apply_overrides(cfg, ["rollout.decode_unroll=0"]).validate()
