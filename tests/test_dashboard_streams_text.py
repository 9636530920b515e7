"""The dashboard's streams pane shows a run's string chunks (text a task streamed: an LLM's
tokens, from its payload say) with their control characters as escapes, as the CLI and the
detail screen's log lines do (display.visible): an ESC sequence in one was obeyed."""

from __future__ import annotations

from tui.streams import StreamsView


def test_a_streamed_escape_sequence_is_shown_not_obeyed() -> None:
    view = StreamsView()
    view.new_keys(["tokens"])
    view.add("tokens", "title \x1b]0;pwned\x07 ")
    view.add("tokens", "clear \x1b[2J\tend\n")
    view.add("tokens", {"json": "\x1b"})
    shown = view.render().plain
    assert "\x1b" not in shown and "\x07" not in shown, repr(shown)
    assert "title \\x1b]0;pwned\\x07 clear \\x1b[2J\tend\n" in shown, shown
    assert '{"json": "\\u001b"}' in shown, shown
