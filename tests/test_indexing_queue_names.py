"""The daemon's own check of a manifest's task ids and queue names. A blank queue name
(`" "`), which the SDK now refuses where a queue is defined, can still come from a project whose
own interpreter has an older SDK; indexing it (a real `runtime index` subprocess) is a
ValidationError naming the task, as a trigger's blank `options.queue.name` is a 400, instead of
a version with a queue named " " that no table, completion or log line tells apart from none.
A task id or queue name holding a control character (an escape sequence) or longer than a name
may be is refused the same way."""

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


#: a task module whose task id holds an escape sequence, as an SDK without the id check wrote it
ESCAPING_ID = '''
from trigger_local import task


@task(id="evil")
async def evil(payload, ctx):
    return None

evil.id = "evil\\x1b[2J\\x1b]0;title\\x07"
'''


async def test_a_manifest_with_a_task_id_holding_control_characters_is_refused(
        tmp_path: Path) -> None:
    """`dev`, `runs ls`, `queues ls` and `status` print task ids: one holding an escape sequence
    cleared the terminal and set its title. Indexing (a real `runtime index` subprocess) refuses
    it, and the message shows the id escaped, so printing the error is harmless too."""
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "evil.py").write_text(ESCAPING_ID)
    with pytest.raises(ValidationError) as caught:
        await index_project(str(tmp_path), ["trigger"])
    assert caught.value.message == ("Task 'evil\\x1b[2J\\x1b]0;title\\x07': its id must not hold "
                                    "control characters (it has '\\x1b' at 4)")
    assert "\x1b" not in caught.value.message


@pytest.mark.parametrize(("task", "error"), [
    ({"id": "a\x00b"}, "Task 'a\\x00b': its id must not hold control characters"),
    ({"id": "a\x9b2J"}, "Task 'a\\x9b2J': its id must not hold control characters"),
    ({"id": "x" * 257}, "its id must be 1 to 256 characters, not 257"),
    ({"id": 5}, "A task needs a non-empty string id, not 5"),
    ({"id": "q", "queue": "shared\x1b[31m", "queue_is_custom": True},
     "Task 'q': the name of its queue 'shared\\x1b[31m' must not hold control characters"),
    ({"id": "q", "queue": "s" * 300, "queue_is_custom": True},
     "must be 1 to 256 characters, not 300"),
])
def test_task_ids_and_queue_names_of_any_manifest_are_names(task: dict[str, object],
                                                            error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        tasks_from_manifest({"tasks": [task]})
    assert error in caught.value.message


def test_a_long_task_id_keeps_its_own_queue() -> None:
    """A task's own queue is `task/<id>`: five characters over the id, which may have 256."""
    [long] = tasks_from_manifest({"tasks": [{"id": "x" * 256, "queue": "task/" + "x" * 256}]})
    assert long.queue == "task/" + "x" * 256
