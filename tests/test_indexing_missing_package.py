"""A task file importing a package the tasks' Python lacks: indexing (a real `runtime index`
subprocess) fails saying which Python runs the tasks and how to install the package there,
since a newcomer's first `import requests` meets the venv trigger-local made, not theirs. A
module of the project itself that is missing gets no such advice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trigger_local.errors import ValidationError
from trigger_local.indexing import index_project


def _project(root: Path, source: str) -> Path:
    (root / "trigger").mkdir(parents=True)
    (root / "trigger" / "tasks.py").write_text(
        f"{source}\nfrom trigger_local import task\n@task(id='t')\nasync def t(payload): ...\n")
    return root


async def test_a_missing_package_says_where_to_install_it(tmp_path: Path) -> None:
    root = _project(tmp_path, "import notinstalled_pkg_ol12.sub")
    with pytest.raises(ValidationError) as failed:
        await index_project(str(root), ["trigger"])
    said = str(failed.value)
    assert "No module named 'notinstalled_pkg_ol12'" in said, said
    assert (f"Tasks run with {sys.executable}: install the package that provides "
            f"'notinstalled_pkg_ol12' there (`{sys.executable} -m pip install PACKAGE`)") in said


@pytest.mark.parametrize("source", ["from trigger import helpers", "import trigger.helpers",
                                    "import tasks_helpers.nothere"])
async def test_a_missing_module_of_the_project_gets_no_install_advice(tmp_path: Path,
                                                                      source: str) -> None:
    root = _project(tmp_path, source)
    (root / "tasks_helpers").mkdir()  # a folder of the project without the module asked for
    (root / "tasks_helpers" / "x.txt").write_text("")
    with pytest.raises(ValidationError) as failed:
        await index_project(str(root), ["trigger"])
    assert "pip install" not in str(failed.value), str(failed.value)
