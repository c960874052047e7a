"""`.ionapi` parsing and validation: URLs built as Infor's SDK builds them, clear errors per key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_connector_pipelines.systems.infor.ionapi import REQUIRED_KEYS, IonApi, IonApiError

# The layout of a real download (contracts/infor.md §1), with fake values.
REAL_LOOKING = {
    "ti": "ACME_TST",
    "cn": "my-integration",
    "dt": "12",
    "ci": "ACME_TST~fakeClientId0123456789",
    "cs": "fakeClientSecret-abcdefghijklmnopqrstuvwxyz",
    "iu": "https://mingle-ionapi.inforcloudsuite.com",
    "pu": "https://mingle-sso.inforcloudsuite.com:443/ACME_TST/as/",
    "oa": "authorization.oauth2",
    "ot": "token.oauth2",
    "or": "revoke_token.oauth2",
    "ev": "U000000001",
    "v": "1.0",
    "saak": "ACME_TST#fakeServiceAccountAccessKey",
    "sask": "fakeServiceAccountSecretKey",
}


def write(tmp_path: Path, content: dict | str) -> Path:
    path = tmp_path / "credentials.ionapi"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_urls_are_built_by_plain_concatenation(tmp_path: Path) -> None:
    ionapi = IonApi.from_file(write(tmp_path, REAL_LOOKING))
    assert ionapi.token_url == "https://mingle-sso.inforcloudsuite.com:443/ACME_TST/as/token.oauth2"
    assert ionapi.revoke_url == "https://mingle-sso.inforcloudsuite.com:443/ACME_TST/as/revoke_token.oauth2"
    assert ionapi.api_base == "https://mingle-ionapi.inforcloudsuite.com/ACME_TST"
    # saak already starts with TENANT#: it is the username exactly as downloaded.
    assert ionapi.username == "ACME_TST#fakeServiceAccountAccessKey"
    assert ionapi.tenant == "ACME_TST"


def test_repr_hides_secrets() -> None:
    shown = repr(IonApi.from_dict(REAL_LOOKING))
    for secret_key in ("cs", "saak", "sask"):
        assert REAL_LOOKING[secret_key] not in shown


@pytest.mark.parametrize("key", sorted(REQUIRED_KEYS))
def test_each_missing_key_is_named(tmp_path: Path, key: str) -> None:
    content = {name: value for name, value in REAL_LOOKING.items() if name != key}
    with pytest.raises(IonApiError, match=f"'{key}'.*missing") as caught:
        IonApi.from_file(write(tmp_path, content))
    assert caught.value.key == key


@pytest.mark.parametrize("key", ["ci", "saak", "pu"])
def test_empty_or_non_string_values_are_named(key: str) -> None:
    for bad in ("", "   ", 12):
        with pytest.raises(IonApiError, match=f"'{key}'.*non-empty string"):
            IonApi.from_dict({**REAL_LOOKING, key: bad})


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("iu", "http://mingle-ionapi.inforcloudsuite.com"),
        ("pu", "http://mingle-sso.inforcloudsuite.com/ACME_TST/as/"),
        ("iu", "ftp://mingle-ionapi.inforcloudsuite.com"),
        ("pu", "mingle-sso.inforcloudsuite.com/ACME_TST/as/"),
    ],
)
def test_non_https_urls_are_refused_even_in_sandbox_mode(key: str, url: str) -> None:
    with pytest.raises(IonApiError, match=f"'{key}'") as caught:
        IonApi.from_dict({**REAL_LOOKING, key: url}, allow_loopback_http=True)
    assert caught.value.key == key


def test_plain_http_only_for_loopback_in_sandbox_mode() -> None:
    loopback = {
        **REAL_LOOKING,
        "iu": "http://127.0.0.1:8700/infor",
        "pu": "http://localhost:8700/infor/ACME_TST/as/",
    }
    with pytest.raises(IonApiError, match="'iu'.*sandbox mode"):
        IonApi.from_dict(loopback)
    ionapi = IonApi.from_dict(loopback, allow_loopback_http=True)
    assert ionapi.api_base == "http://127.0.0.1:8700/infor/ACME_TST"
    # Re-checked when an adapter is opened without sandbox mode.
    with pytest.raises(IonApiError, match="'iu'"):
        ionapi.check_urls(allow_loopback_http=False)


def test_pu_without_trailing_slash_is_refused() -> None:
    with pytest.raises(IonApiError, match="'pu'.*end with"):
        IonApi.from_dict({**REAL_LOOKING, "pu": "https://mingle-sso.inforcloudsuite.com/ACME_TST/as"})


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(IonApiError, match="not valid JSON"):
        IonApi.from_file(write(tmp_path, '{"ti": "ACME", "cs": "secret-value"'))
    with pytest.raises(IonApiError, match="JSON object"):
        IonApi.from_file(write(tmp_path, "[1, 2]"))


def test_error_messages_never_carry_secret_values(tmp_path: Path) -> None:
    with pytest.raises(IonApiError) as caught:
        IonApi.from_file(write(tmp_path, {**REAL_LOOKING, "iu": "http://example.com", "cs": "s3cr3t"}))
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(IonApiError) as caught:
        IonApi.from_file(write(tmp_path, '{"cs": "s3cr3t",'))
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("iu", "https://mingle-ionapi.inforcloudsuite.com\r\nX-Injected: 1", "control characters"),
        ("pu", "https://mingle-sso.inforcloudsuite.com/ACME_TST/as/\n", "control characters"),
        ("iu", "https://mingle-ionapi.inforcloudsuite.com/a b", "whitespace"),
        ("iu", "https://admin:hunter2@mingle-ionapi.inforcloudsuite.com", "user or password"),
        ("pu", "https://admin@mingle-sso.inforcloudsuite.com/ACME_TST/as/", "user or password"),
        ("iu", "https://mingle-ionapi.inforcloudsuite.com:99999999", "not a valid URL"),
        ("cs", "x" * 1_000_000, "longer than"),
        ("ev", "x" * 5_000, "longer than"),
        ("ti", "../../etc", "one plain path segment"),
        ("ti", "ACME/TST", "one plain path segment"),
        ("ti", "ACME\x00TST", "control characters"),
        ("ti", "ACME TST", "one plain path segment"),
        ("ti", "..", "one plain path segment"),
        ("ot", "token.oauth2?x=1", "plain path"),
        ("saak", "ACME_TST#key\r\n", "control characters"),
    ],
)
def test_unsafe_values_are_refused_naming_the_key(key: str, value: str, reason: str) -> None:
    with pytest.raises(IonApiError) as caught:
        IonApi.from_dict({**REAL_LOOKING, key: value})
    assert caught.value.key == key and reason in str(caught.value)
    assert value not in str(caught.value)


def test_deeply_nested_or_huge_files_are_clean_errors(tmp_path: Path) -> None:
    deep = '{"ti": ' + "[" * 20_000 + "]" * 20_000 + "}"  # 40 KB: small, yet a RecursionError
    with pytest.raises(IonApiError, match="nested deeper than"):
        IonApi.from_file(write(tmp_path, deep))
    huge = json.dumps({**REAL_LOOKING, "padding": "x" * 100_000})
    with pytest.raises(IonApiError, match="larger than"):
        IonApi.from_file(write(tmp_path, huge))
