"""Mistakes in params.yaml and device profiles stop the run with one line naming the file, key or value."""
import textwrap
from pathlib import Path

import pytest

from devices.profile import ANY_ARCH, KNOWN_ARCHES, PROFILES_DIR, ProfileError, known_profiles, load_profile
from pipeline.config import params as params_mod
from pipeline.config.params import ParamsError, load, read_raw
from pipeline.stages.common import load_params
from tests.conftest import ROOT

GOOD = """\
seed: 0
methods: [mae, simclr]
modalities:
  image: {}
tasks:
  digits: {modality: image}
bench: {profiles: [cpu-x86]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load(path)
    return str(err.value)


def test_good_params_load(tmp_path):
    params = load(write(tmp_path, GOOD))
    assert params.methods == ["mae", "simclr"] and params.bench.profiles == ["cpu-x86"]


def test_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("methods: [mae, simclr]", "methods: [mae, simclr"))
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path / 'params.yaml'}:3:") and "not valid YAML" in msg and "flow sequence" in msg


def test_stage_start_turns_a_yaml_error_into_a_one_line_exit(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD.replace("  image: {}", "  image: {mask_ratio: 0.5\n"))
    monkeypatch.setattr(params_mod, "PARAMS_FILE", path)
    with pytest.raises(SystemExit) as exc:
        load_params()
    assert "\n" not in str(exc.value.code) and str(path) in str(exc.value.code)


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("seed: 0\n", "seed: 0\nencoder: {depth: 2}\n") + "encoder: {depth: 6}\n")
    assert msg == f"{tmp_path / 'params.yaml'}:9:1: duplicate key 'encoder' (first at line 2)"


def test_nested_duplicate_key_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("  digits: {modality: image}", "  digits: {modality: image, modality: x}"))
    assert "duplicate key 'modality'" in msg and "first at line 6" in msg and ":6:" in msg


def test_merge_keys_may_still_be_overridden(tmp_path):
    text = GOOD + "pretrain: &opt {epochs: 3, lr: 0.01}\nfinetune:\n  <<: *opt\n  epochs: 2\n"
    params = load(write(tmp_path, text))
    assert params.finetune.epochs == 2 and params.finetune.lr == 0.01


def test_no_methods_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("[mae, simclr]", "[]"))
    assert "methods: list at least one method, of 'mae', 'simclr', 'random'" in msg


def test_a_method_listed_twice_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("[mae, simclr]", "[mae, simclr, mae]"))
    assert "methods: method 'mae' listed more than once" in msg


def test_missing_section_is_named_briefly(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("tasks:\n  digits: {modality: image}\n", ""))
    assert "tasks: required, missing" in msg
    assert "modalities" not in msg and "seed" not in msg  # not the whole params dict


def test_long_values_are_shortened_in_messages(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("seed: 0", f"seed: [{', '.join(['1'] * 100)}]"))
    assert "seed:" in msg and "..." in msg and len(msg.splitlines()[1]) < 200


def test_unknown_device_profile_is_found_when_params_are_read(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("[cpu-x86]", "[cpu-x86, jetson-nano]"))
    assert "bench.profiles" in msg and "'jetson-nano'" in msg
    assert all(name in msg for name in known_profiles())


def test_device_profile_listed_twice_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("[cpu-x86]", "[cpu-x86, intel-npu, cpu-x86]"))
    assert "bench.profiles: profile 'cpu-x86' listed more than once" in msg


def test_device_profile_by_path_is_accepted(tmp_path):
    assert load(write(tmp_path, GOOD.replace("[cpu-x86]", f"['{PROFILES_DIR / 'cpu-arm64.toml'}']")))


def test_shipped_profiles_all_name_their_arch():
    for name in known_profiles():
        assert load_profile(name).arch in KNOWN_ARCHES, name


def test_profile_without_arch_is_rejected(tmp_path):
    text = (PROFILES_DIR / "cpu-arm64.toml").read_text()
    assert 'arch = "aarch64"\n' in text
    path = tmp_path / "arm.toml"
    path.write_text(text.replace('arch = "aarch64"\n', ""))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and "missing field 'arch'" in str(err.value) and "'any'" in str(err.value)


def test_profile_for_any_arch_matches_every_host(tmp_path):
    path = tmp_path / "anywhere.toml"
    path.write_text((PROFILES_DIR / "cpu-arm64.toml").read_text().replace('arch = "aarch64"', f'arch = "{ANY_ARCH}"'))
    profile = load_profile(path)
    assert profile.matches_host_arch("x86_64") and profile.matches_host_arch("aarch64")
    assert not load_profile("cpu-arm64").matches_host_arch("x86_64")


def test_shipped_params_still_load():
    assert load(ROOT / "params.yaml").methods and load(ROOT / "tests" / "params.tiny.yaml").methods == ["mae"]


def test_unquoted_yes_and_no_stay_words_as_dvc_writes_them(tmp_path):
    """`dvc exp run -S` rewrites params.yaml with YAML 1.2 quoting: the keywords yes/no/on/off lose their quotes."""
    text = (ROOT / "params.yaml").read_text().replace('["yes", "no", up, down, left, right, "on", "off"',
                                                      '[yes, no, up, down, left, right, on, off')
    assert "[yes, no, up" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load(path).modality("audio").keywords[:2] == ["yes", "no"]
    assert read_raw(path)["pretrain"]["amp"] is True  # true/false are still booleans
