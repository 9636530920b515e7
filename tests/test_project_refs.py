"""Project refs (issue #11): where a project's ref comes from (trigger.toml, else its directory),
what `init` writes, and the project the SDK and CLI say they mean."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigger_local.cli.main import app
from trigger_local.config import load_project, project_ref_of
from trigger_local.errors import ValidationError
from trigger_local.projects import check_project_ref, derive_project_ref
from trigger_local.sdk.client import Endpoint, _headers, resolve_endpoint
from trigger_local.tokens import project_key


def test_a_ref_is_derived_from_the_directory_when_the_config_names_none(tmp_path: Path) -> None:
    assert derive_project_ref(tmp_path / "My App!") == "proj_my-app"
    # a name with nothing usable in it gets a hash of itself: distinct, valid, stable
    odd = [derive_project_ref(tmp_path / name) for name in ("___", "日本", "---")]
    assert len(set(odd)) == 3 and all(check_project_ref(ref) for ref in odd), odd
    assert derive_project_ref(tmp_path / "___") == odd[0]
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "trigger.toml").write_text('dirs = ["jobs"]\n')
    assert load_project(tmp_path / "svc").project == "proj_svc"
    assert project_ref_of(tmp_path / "svc") == "proj_svc"
    assert project_ref_of(tmp_path / "no-config") == "proj_no-config"


@pytest.mark.parametrize("ref", ["", "has space", "-leading", "x" * 65, 42])
def test_invalid_refs_are_refused(tmp_path: Path, ref: object) -> None:
    with pytest.raises(ValidationError, match="Invalid project"):
        check_project_ref(ref)
    if isinstance(ref, str) and ref:
        (tmp_path / "trigger.toml").write_text(f'project = "{ref}"\n')
        with pytest.raises(ValidationError, match="project in trigger.toml"):
            load_project(tmp_path)


def test_init_writes_a_ref_of_its_own_for_each_project(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("shop", "blog"):
        assert runner.invoke(app, ["init", str(tmp_path / name)]).exit_code == 0
    assert [load_project(tmp_path / name).project
            for name in ("shop", "blog")] == ["proj_shop", "proj_blog"]
    assert 'project = "proj_shop"' in (tmp_path / "shop" / "trigger.toml").read_text()


def test_project_keys_differ_per_project_and_look_like_dev_keys() -> None:
    a, b = project_key("secret", "proj_a"), project_key("secret", "proj_b")
    assert a != b and a.startswith("tr_dev_") and project_key("secret", "proj_a") == a


def test_the_sdk_names_its_project_from_the_environment_or_the_current_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_API_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("TRIGGER_LOCAL_PROJECT", raising=False)
    (tmp_path / "trigger.toml").write_text('project = "proj_here"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert _headers(resolve_endpoint())["x-trigger-local-project"] == "proj_here"
    monkeypatch.setenv("TRIGGER_LOCAL_PROJECT", "proj_env")
    assert resolve_endpoint().project == "proj_env"
    monkeypatch.delenv("TRIGGER_LOCAL_PROJECT")
    (tmp_path / "trigger.toml").write_text("project = [broken\n")
    assert resolve_endpoint().project is None  # a broken trigger.toml is dev's to report
    assert "x-trigger-local-project" not in _headers(Endpoint("http://x", None))


def test_a_ref_derived_from_the_directory_is_named_for_the_daemons_key_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a project's key (TRIGGER_SECRET_KEY) in a directory whose config names no project,
    the SDK named the ref the directory's name derives: another project's, every request 403."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret_key").write_text("tr_dev_daemons\n")
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(home))
    monkeypatch.setenv("TRIGGER_API_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("TRIGGER_LOCAL_PROJECT", raising=False)
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "trigger.toml").write_text('dirs = ["trigger"]\n')
    monkeypatch.chdir(tmp_path / "loose")
    assert resolve_endpoint().project == "proj_loose"  # the home's (the daemon's) key
    monkeypatch.setenv("TRIGGER_SECRET_KEY", "tr_dev_daemons")
    assert resolve_endpoint().project == "proj_loose"
    monkeypatch.setenv("TRIGGER_SECRET_KEY", project_key("tr_dev_daemons", "proj_a"))
    endpoint = resolve_endpoint()
    assert endpoint.project is None and "x-trigger-local-project" not in _headers(endpoint)
    (tmp_path / "loose" / "trigger.toml").write_text('project = "proj_b"\n')  # named: sent
    assert resolve_endpoint().project == "proj_b"
