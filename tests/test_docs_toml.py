"""Every `trigger.toml` the docs show loads with `config.load_project`, and its keys land where
the doc says (a key written after `[retry]` belongs to `[retry]` in TOML: an example that does
that must fail here, not in a user's project)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from trigger_local.config import load_project
from trigger_local.errors import ValidationError

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: the keys of trigger.toml: a block with none of them (a pyproject.toml, say) is not one
TRIGGER_KEYS = {"project", "dirs", "retry", "machine", "max_duration", "executor", "build"}


def toml_blocks() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for number, match in enumerate(BLOCK.finditer(path.read_text()), start=1):
            found.append((f"{path.relative_to(ROOT)}#{number}", match.group(1)))
    return found


def trigger_toml_blocks() -> list[tuple[str, str]]:
    return [(name, text) for name, text in toml_blocks() if set(tomllib.loads(text)) & TRIGGER_KEYS]


def test_the_docs_show_trigger_toml_examples() -> None:
    names = [name for name, _ in trigger_toml_blocks()]
    assert any(name.startswith("docs/configuration.md") for name in names), names


@pytest.mark.parametrize(("name", "text"), trigger_toml_blocks(), ids=lambda v: v if "#" in str(v)
                         else "")
def test_every_documented_trigger_toml_loads(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "trigger.toml").write_text(text)
    config = load_project(tmp_path)
    data = tomllib.loads(text)
    assert config.dirs == ([data["dirs"]] if isinstance(data.get("dirs"), str)
                           else data.get("dirs", ["trigger"]))
    assert config.retry == data.get("retry")
    assert config.machine == data.get("machine")
    if "max_duration" in data:
        assert config.max_duration is not None and config.max_duration >= 1
    assert config.build == data.get("build", {})
    if config.retry is not None:  # keys the doc puts in [retry] are retry keys, nothing else
        assert set(config.retry) <= {"max_attempts", "factor", "min_timeout_s", "max_timeout_s",
                                     "randomize",
                                     "out_of_memory"}, f"{name}: {sorted(config.retry)}"


def test_a_top_level_key_written_after_retry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "trigger.toml").write_text('[retry]\nmax_attempts = 2\n\nmachine = "small-1x"\n')
    with pytest.raises(ValidationError, match=r"\[retry\].*machine"):
        load_project(tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ('[retry]\nmax_attempts = 0\n', "max_attempts"),
    ('[retry]\nmax_attempts = 18446744073709551616\n', "max_attempts"),
    ('[retry]\nfactor = "fast"\n', "factor"),
    ('retry = 3\n', "retry"),
    ('machine = "huge"\n', "machine"),
    ('max_duration = "forever"\n', "max_duration"),
    ('max_duration = 0.5\n', "max_duration"),
    ('dirs = 3\n', "dirs"),
    ('dirs = [3]\n', "dirs"),
    ('dirs = []\n', "dirs"),
    ('dirs = ["/etc"]\n', "inside the project"),
    ('dirs = ["trigger/../../x"]\n', "inside the project"),
    ('build = 3\n', r"\[build\]"),
    ('[build]\nbase_image = "x"\n\nmax_duration = 60\n', r"\[build\].*max_duration"),
    ('[build]\napt_packages = "ffmpeg"\n', "apt_packages"),
    ('[build]\nrequirements = [1]\n', "requirements"),
])
def test_bad_project_defaults_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "trigger.toml").write_text(text)
    with pytest.raises(ValidationError, match=message):
        load_project(tmp_path)


def test_an_unknown_executor_is_refused_when_trigger_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / "trigger.toml").write_text('executor = "k8s"\n')
    with pytest.raises(ValidationError, match="Invalid executor in trigger.toml 'k8s': use "
                                              "process or docker"):
        load_project(tmp_path)
    (tmp_path / "trigger.toml").write_text('executor = "docker"\n')
    assert load_project(tmp_path).executor == "docker"
