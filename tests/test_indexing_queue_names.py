"""The daemon's own check of a manifest's queue names: a blank one (`" "`), which the SDK now
refuses where a queue is defined, can still come from a project whose own interpreter has an
older SDK; indexing it (a real `runtime index` subprocess) is a ValidationError naming the task,
as a trigger's blank `options.queue.name` is a 400, instead of a version with a queue named
" " that no table, completion or log line tells apart from none."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_local.errors import ValidationError
from trigger_local.indexing import index_project, tasks_from_manifest

#: a task module as an SDK before the check let it be written (its Queue takes the name as is)
OLDER_SDK = '''
from trigger_local import queue, task

shared = queue("q")
object.__setattr__(shared, "name", NAME)


@task(id="blank", queue=shared)
def blank(payload):
    return None
'''


@pytest.mark.parametrize("name", [" ", "\t", "\u3000\n"])
async def test_a_manifest_with_a_blank_queue_name_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "blank.py").write_text(OLDER_SDK.replace("NAME", repr(name)))
    with pytest.raises(ValidationError, match="Task 'blank': a queue needs a name that is not "
                                              "empty or only whitespace"):
        await index_project(str(tmp_path), ["trigger"])


def test_an_empty_or_absent_queue_is_the_tasks_own() -> None:
    [empty, absent, named] = tasks_from_manifest({"tasks": [
        {"id": "a", "queue": ""}, {"id": "b"}, {"id": "c", "queue": " q "}]})
    assert (empty.queue, absent.queue, named.queue) == ("task/a", "task/b", " q ")
