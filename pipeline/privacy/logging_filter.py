"""Scrub PII out of log records before any handler writes them.

Why on *handlers*: a filter attached to a logger only sees records logged through that
very logger; records from child loggers propagate to the root's handlers without
passing the root logger's filters. A filter on each root handler therefore sees every
record that reaches the root, whichever logger emitted it.
"""

from __future__ import annotations

import logging
import threading

from .scrubber import Scrubber

__all__ = ["ScrubbingFilter", "default_scrubber", "install_log_scrubbing", "scrub", "scrub_obj"]

_default: Scrubber | None = None
_default_lock = threading.Lock()


def default_scrubber() -> Scrubber:
    """Process-wide scrubber with every built-in detector (built on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Scrubber.from_config(None)
    return _default


def scrub(text: str) -> str:
    """``default_scrubber().scrub(text)``."""
    return default_scrubber().scrub(text)


def scrub_obj(obj):
    """``default_scrubber().scrub_obj(obj)``."""
    return default_scrubber().scrub_obj(obj)


class ScrubbingFilter(logging.Filter):
    """Replace PII in a record's message, arguments, traceback and stack text.

    The message is formatted first (``msg % args``) and the result scrubbed, then
    ``args`` is set to ``None``: scrubbing the arguments one by one would miss PII that
    only appears once they are joined, and would break ``%d`` placeholders. The filter
    never drops a record (always returns ``True``); if formatting fails the raw ``msg``
    is scrubbed instead, so the record still gets logged (without its arguments).

    Tracebacks: the traceback is rendered into ``exc_text`` and scrubbed, and
    ``exc_info`` is cleared, because some formatters (JSON ones in particular) render
    ``exc_info`` themselves and would bypass the scrubbed text. Standard formatters print
    ``exc_text`` as usual. Pass ``keep_exc_info=True`` for handlers that need the
    exception object (they then see unscrubbed exception data).
    """

    def __init__(
        self, scrubber: Scrubber | None = None, name: str = "", *, keep_exc_info: bool = False
    ):
        super().__init__(name)
        self.scrubber = scrubber
        self.keep_exc_info = keep_exc_info

    def _scrubber(self) -> Scrubber:
        return self.scrubber if self.scrubber is not None else default_scrubber()

    def filter(self, record: logging.LogRecord) -> bool:
        # The same record passes every root handler: scrub it once per scrubber (a handler
        # may carry stricter rules than the record factory's).
        s = self._scrubber()
        if getattr(record, "_pii_scrubbed", None) is s:
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad format/args: keep the record, lose the args
            message = str(record.msg)
        record.msg = s.scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so formatting the traceback here
            # (and scrubbing it) means the unscrubbed text is never produced later.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = s.scrub(record.exc_text)
            if not self.keep_exc_info:
                record.exc_info = None
        if record.stack_info:
            record.stack_info = s.scrub(record.stack_info)
        record._pii_scrubbed = s
        return True


def install_log_scrubbing(scrubber: Scrubber | None = None) -> ScrubbingFilter:
    """Attach one :class:`ScrubbingFilter` to every handler of the root logger.

    Idempotent: handlers that already carry a ``ScrubbingFilter`` are left alone (if a
    ``scrubber`` is given it replaces the one they use). Handlers added to the root
    later are not covered: call again after (re)configuring logging. Returns the filter.
    """
    root = logging.getLogger()
    existing = [f for h in root.handlers for f in h.filters if isinstance(f, ScrubbingFilter)]
    filt = existing[0] if existing else ScrubbingFilter(scrubber)
    if scrubber is not None:
        for f in existing:
            f.scrubber = scrubber
    for handler in root.handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(filt)
    _scrub_at_creation(filt)
    return filt


_factory_filter: list[ScrubbingFilter] = []  # the filter the record factory applies


def _scrub_at_creation(filt: ScrubbingFilter) -> None:
    """Scrub every record when it is made, whichever logger made it: libraries that give
    their logger a handler of its own and stop propagation (MLflow does, on import) never
    reach the root's handlers. Python warnings are routed into logging (`py.warnings`) so
    they pass here too instead of going straight to stderr."""
    logging.captureWarnings(True)
    # Keep exc_info: handlers decide whether to drop it (exc_text is scrubbed either way, and
    # formatters print exc_text when it is set).
    filt = ScrubbingFilter(filt.scrubber, keep_exc_info=True)
    if _factory_filter:
        _factory_filter[0] = filt
        return
    _factory_filter.append(filt)
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _factory_filter[0].filter(record)
        return record

    logging.setLogRecordFactory(factory)
