"""Secrets redacted at record time are asked for at replay: --param PATH=VALUE or $REPROFLOW_PARAM_PATH."""

from __future__ import annotations

import pydantic
import pytest

from reproflow import errors
from reproflow.values._scrub import scrub_mapping
from reproflow.values._typed import from_typed_json, to_typed_json
from reproflow.replay._secrets import env_name, parse_params, supplied


def _recorded() -> dict[str, object]:
    params = {"password": "pw-123456", "config": {"db": {"password": "db-pw-999", "host": "h"}},
              "auth": ("bob", "pw-tuple-1"), "n": 3}
    return scrub_mapping({k: to_typed_json(v) for k, v in params.items()})


def test_each_redacted_value_is_named_by_its_path() -> None:
    """Every marker gets a path and an environment variable; nothing is filled silently."""
    s = supplied({}, {})
    filled = s.fill_mapping(_recorded())
    assert s.missing == ["password", "config.db.password", "auth.0", "auth.1"]  # every string under `auth`
    assert [env_name(p) for p in s.missing] == ["REPROFLOW_PARAM_PASSWORD", "REPROFLOW_PARAM_CONFIG_DB_PASSWORD",
                                                "REPROFLOW_PARAM_AUTH_0", "REPROFLOW_PARAM_AUTH_1"]
    err = s.error("flow 'f'")
    assert isinstance(err, errors.SecretParameterMissing) and err.paths == s.missing
    assert str(err).startswith("parameter 'password' of flow 'f' is a secret that was not recorded (and 3 more")
    assert "\n" not in str(err)
    assert filled["n"] == 3


def test_values_from_flags_and_environment_restore_the_parameters() -> None:
    """--param wins over the environment; the filled typed JSON decodes to the original values."""
    s = supplied({"password": "pw-123456", "auth.0": "bob", "auth.1": "pw-tuple-1"},
                 {"REPROFLOW_PARAM_CONFIG_DB_PASSWORD": "db-pw-999", "REPROFLOW_PARAM_PASSWORD": "other"})
    filled = s.fill_mapping(_recorded())
    assert s.missing == [] and s.error("x") is None
    assert {k: from_typed_json(v) for k, v in filled.items()} == {
        "password": "pw-123456", "config": {"db": {"password": "db-pw-999", "host": "h"}},
        "auth": ("bob", "pw-tuple-1"), "n": 3}
    assert s.lines() == ["password: from --param", "config.db.password: from $REPROFLOW_PARAM_CONFIG_DB_PASSWORD",
                         "auth.0: from --param", "auth.1: from --param"]


def test_argv_entries_are_replaced_whole() -> None:
    s = supplied({"argv.2": "--token=abc"}, {})
    assert s.fill_argv(["flow.py", "--fast", "--token=[REDACTED]"]) == ["flow.py", "--fast", "--token=abc"]


def test_bad_param_option_is_one_line() -> None:
    with pytest.raises(errors.SecretParameterMissing, match="write it as --param NAME=VALUE"):
        parse_params(["token"])
    assert parse_params(["a=1", "b.c=x=y"]) == {"a": "1", "b.c": "x=y"}


class DbConfig(pydantic.BaseModel):
    host: str = "db.example.org"
    password: str = "db-pw-999"


def test_a_secret_field_of_a_config_object_is_asked_for_and_rebuilt() -> None:
    """A pydantic config parameter with a password field: the field is redacted inside the
    recorded instance, named by its path (`cfg.password`), and the filled record rebuilds the
    model with the value given at replay."""
    recorded = scrub_mapping({"cfg": to_typed_json(DbConfig())})
    assert "db-pw-999" not in str(recorded)
    s = supplied({}, {"REPROFLOW_PARAM_CFG_PASSWORD": "db-pw-999"})
    filled = s.fill_mapping(recorded)
    assert s.missing == [] and s.lines() == ["cfg.password: from $REPROFLOW_PARAM_CFG_PASSWORD"]
    assert from_typed_json(filled["cfg"]) == DbConfig()
