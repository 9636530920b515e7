"""structlog set-up for the daemon: readable in a terminal, JSON lines with --log-json.

Writing a log line never raises: when stderr is a file on a full disk, the line is dropped
(the daemon goes on; /healthz and the API's 507 say what is wrong). A logging call that raised
would turn every `except` block that logs into a new failure — that is how a full disk once
ended the dispatcher."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog


class SafePrintLogger(structlog.PrintLogger):
    """A PrintLogger that drops a line it cannot write instead of raising."""

    def msg(self, message: str) -> None:
        try:
            super().msg(message)
        except (OSError, ValueError):  # ENOSPC, EPIPE; ValueError: the file was closed
            pass

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class SafePrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> SafePrintLogger:
        return SafePrintLogger(self._file)


def configure_logging(json_lines: bool = False, level: str = "INFO") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    stamps: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamps,
                    structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        logger_factory=SafePrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # stdlib logging's lines (uvicorn's: http_server.py gives it no handlers of its own) in the
    # same format, their logger named; it already swallows write errors (Handler.handleError)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        # format_exc_info: a traceback as text, as in the daemon's own lines (JSON had a repr of
        # the traceback object; the console a rich one with every frame's locals: keys, headers)
        foreign_pre_chain=[*stamps, structlog.stdlib.add_logger_name,
                           structlog.processors.format_exc_info],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
