"""A request head is refused past `MAX_HEADERS` header lines or `MAX_HEAD_BYTES` bytes (its
target and headers): 431, and its connection closes.

uvicorn's httptools parser has no such limit (its h11 one has, 16 KiB, but the daemon runs
httptools): a 200 KB header, or 5,000 headers, went to the app whole, kept in memory for the
request's life, and a header line that never ended grew in the parser for as long as the head
deadline let it (http_deadline.py). The parser hands over a header only once it is whole, so
the bytes of a head still coming are counted as they arrive too: what it holds stays under
`MAX_HEAD_BYTES` and one read. No client of the daemon sends more than a few hundred bytes of
head in a dozen headers; the limits are those of common servers (Apache's 100 headers, a few
times nginx's 8 KiB buffers)."""

from __future__ import annotations

import logging

import structlog

from .errors import HeadTooLarge
from .http_deadline import HeadDeadlineHttp

log = structlog.get_logger("http")
#: uvicorn's logger for a connection whose head is refused: uvicorn reads the refusal (raised in
#: a parser callback) as a broken request and would log "Invalid HTTP request received."
_QUIET = logging.Logger("refused head")
_QUIET.disabled = True

MAX_HEADERS = 100
MAX_HEAD_BYTES = 64 * 1024

_MESSAGE = (f"Request header fields too large: at most {MAX_HEADERS} headers and "
            f"{MAX_HEAD_BYTES // 1024} KiB for the target and headers together.").encode()
_TOO_LARGE_ANSWER = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                     b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n%s" % (len(_MESSAGE), _MESSAGE))


class HeadLimitsHttp(HeadDeadlineHttp):
    """The daemon's HTTP protocol (http_deadline.py's), refusing a request head that is too
    large with 431, and one log line saying why."""

    _head_bytes = 0  # of the target and headers the parser handed over
    _head_open = True  # the current request's head is not complete yet
    _head_read = 0  # bytes read while it was not, from the read after the one it began in
    _refused = ""  # why the head is refused
    _logger: logging.Logger

    @property
    def logger(self) -> logging.Logger:
        return _QUIET if self._refused else self._logger

    @logger.setter
    def logger(self, logger: logging.Logger) -> None:
        self._logger = logger

    def data_received(self, data: bytes) -> None:
        if self._head_open:
            self._head_read += len(data)
        super().data_received(data)
        if self._head_open and self._head_read > MAX_HEAD_BYTES \
                and not self.transport.is_closing():
            self._refused = f"a head still coming past {MAX_HEAD_BYTES // 1024} KiB"
            self.send_400_response("")

    def on_message_begin(self) -> None:
        self._head_bytes = self._head_read = 0
        self._head_open = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        if len(self.headers) >= MAX_HEADERS:
            self._refuse(f"more than {MAX_HEADERS} headers")
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(f"a target and headers past {MAX_HEAD_BYTES // 1024} KiB")

    def _refuse(self, why: str) -> None:
        self._refused = why
        raise HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)
            return
        log.info("refused a request head past the limits (431)", why=self._refused,
                 client=self.client and self.client[0])
        self.transport.write(_TOO_LARGE_ANSWER)
        self.transport.close()
