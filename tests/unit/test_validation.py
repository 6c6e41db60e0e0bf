import pytest

from fnctl import validation
from fnctl.errors import UsageError


@pytest.mark.parametrize("name", ["a", "lambda-bash", "x" * 63, "a1-b2"])
def test_valid_service_names(name):
    assert validation.service_name(name) == name


@pytest.mark.parametrize("name,why", [("Lambda", "DNS-1035"), ("1abc", "DNS-1035"), ("a_b", "DNS-1035"),
                                      ("abc-", "DNS-1035"), ("x" * 64, "63 characters"), ("", "DNS-1035")])
def test_invalid_service_names_say_why(name, why):
    with pytest.raises(UsageError) as e:
        validation.service_name(name)
    assert why in e.value.message
    assert "lowercase" in e.value.hint


def test_key_values_keep_order_and_split_on_first_equals():
    assert validation.key_values(["A=1", "B=x=y", "C="], "--env") == {"A": "1", "B": "x=y", "C": ""}


@pytest.mark.parametrize("pair", ["NOVALUE", "=v"])
def test_key_values_without_equals_are_refused(pair):
    with pytest.raises(UsageError, match="KEY=VALUE"):
        validation.key_values([pair], "--build-argument")


def test_env_names_must_be_variable_names():
    with pytest.raises(UsageError, match="environment variable name"):
        validation.key_values(["1X=a"], "--env")


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400),
                                          ("500ms", 0.5), ("2.5s", 2.5)])
def test_durations(text, seconds):
    assert validation.duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5", "0", "5m3"])
def test_bad_durations(text):
    with pytest.raises(UsageError):
        validation.duration(text)


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_no_api_path_is_built_from_dots(name):
    from fnctl.kube.client import KSERVICES

    with pytest.raises(UsageError, match="invalid"):
        KSERVICES.path("default", name)
    with pytest.raises(UsageError, match="invalid namespace"):
        KSERVICES.path(name, "hello")
    assert KSERVICES.path("default", "hello").endswith("/namespaces/default/services/hello")
    assert KSERVICES.path("default").endswith("/namespaces/default/services")


@pytest.mark.parametrize("check", [validation.template_name, validation.namespace])
@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "UP", "-a", "a" * 64])
def test_bad_template_and_namespace_names(check, name):
    with pytest.raises(UsageError):
        check(name)
