"""ScrubbingFilter / install_log_scrubbing on the root logger's handlers."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.privacy import Scrubber, ScrubbingFilter, install_log_scrubbing


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record):
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def root_handlers():
    """Two handlers on the root logger, removed again afterwards."""
    root = logging.getLogger()
    old_level = root.level
    h1, stream = ListHandler(), io.StringIO()
    h2 = logging.StreamHandler(stream)
    h2.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root.addHandler(h1)
    root.addHandler(h2)
    root.setLevel(logging.DEBUG)
    yield h1, h2, stream
    root.removeHandler(h1)
    root.removeHandler(h2)
    root.setLevel(old_level)


def test_child_logger_record_is_scrubbed(root_handlers):
    h1, h2, stream = root_handlers
    install_log_scrubbing()
    log = logging.getLogger("govpipe.stage.train.child")
    log.info("user %s from %s paid %d", "jane@example.com", "10.0.0.1", 42)
    rec = h1.records[-1]
    assert rec.msg == "user [EMAIL] from [IPV4] paid 42"
    assert rec.args is None
    assert h1.lines[-1] == "user [EMAIL] from [IPV4] paid 42"
    out = stream.getvalue()
    assert "govpipe.stage.train.child INFO user [EMAIL] from [IPV4] paid 42" in out
    assert "jane@example.com" not in out


def test_pii_split_over_args_is_caught(root_handlers):
    h1, _, _ = root_handlers
    install_log_scrubbing()
    logging.getLogger("x").warning("mail %s@%s", "jane", "example.com")
    assert h1.records[-1].getMessage() == "mail [EMAIL]"


def test_dict_args_and_exception_text(root_handlers):
    h1, _, stream = root_handlers
    install_log_scrubbing()
    log = logging.getLogger("govpipe.api")
    log.info("%(who)s called", {"who": "+44 20 7946 0958"})
    assert h1.records[-1].getMessage() == "[PHONE] called"
    try:
        raise ValueError("bad card 4111 1111 1111 1111")
    except ValueError:
        log.exception("failed for %s", "bob@example.org")
    rec = h1.records[-1]
    assert rec.getMessage() == "failed for [EMAIL]"
    assert "[CREDIT_CARD]" in rec.exc_text and "4111 1111" not in rec.exc_text
    assert "4111 1111" not in stream.getvalue() and "bob@example.org" not in stream.getvalue()


def test_records_are_never_dropped(root_handlers):
    h1, _, _ = root_handlers
    install_log_scrubbing()
    log = logging.getLogger("govpipe.broken")
    log.error("two placeholders %s %s for a@example.com", "only-one")  # bad args
    assert len(h1.records) == 1
    assert h1.records[-1].getMessage() == "two placeholders %s %s for [EMAIL]"


def test_install_is_idempotent(root_handlers):
    h1, h2, _ = root_handlers
    f1 = install_log_scrubbing()
    f2 = install_log_scrubbing()
    assert f1 is f2
    for h in (h1, h2):
        assert sum(isinstance(f, ScrubbingFilter) for f in h.filters) == 1
    custom = Scrubber.from_config(
        {"builtin": [], "custom": [{"name": "EMP", "pattern": r"EMP-\d{6}"}]}
    )
    install_log_scrubbing(custom)
    logging.getLogger("y").info("badge EMP-123456 a@example.com")
    assert h1.records[-1].getMessage() == "badge [EMP] a@example.com"
    for h in (h1, h2):
        assert sum(isinstance(f, ScrubbingFilter) for f in h.filters) == 1


def test_filter_on_a_single_handler():
    handler = ListHandler()
    handler.addFilter(ScrubbingFilter())
    log = logging.getLogger("standalone.test")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("ssn %s", "123-45-6789")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert handler.lines == ["ssn [US_SSN]"]


def test_exc_info_cleared_unless_kept():
    handler = ListHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("standalone.exc")
    log.propagate = False
    log.addHandler(handler)
    kept = ListHandler()
    kept.addFilter(ScrubbingFilter(keep_exc_info=True))
    try:
        handler.addFilter(ScrubbingFilter())
        try:
            raise RuntimeError("for 10.0.0.1")
        except RuntimeError:
            log.exception("boom")
        rec = handler.records[-1]
        assert rec.exc_info is None and "[IPV4]" in rec.exc_text
        assert "[IPV4]" in handler.lines[-1] and "10.0.0.1" not in handler.lines[-1]
        log.removeHandler(handler)
        log.addHandler(kept)
        try:
            raise RuntimeError("for 10.0.0.2")
        except RuntimeError:
            log.exception("boom")
        assert kept.records[-1].exc_info is not None
    finally:
        log.removeHandler(handler)
        log.removeHandler(kept)
        log.propagate = True


def test_module_level_helpers():
    from pipeline.privacy import scrub, scrub_obj

    assert scrub("mail a@example.com") == "mail [EMAIL]"
    assert scrub_obj({"k": ["123-45-6789"]}) == {"k": ["[US_SSN]"]}


def test_a_library_logger_with_its_own_handler_is_scrubbed_too(root_handlers):
    """MLflow gives its logger a handler of its own and stops propagation on import: records
    made there never reach the root handlers, so they are scrubbed when they are made."""
    install_log_scrubbing(Scrubber.from_config(None))
    own, stream = ListHandler(), io.StringIO()
    lib = logging.getLogger("thirdparty.like_mlflow")
    lib.propagate = False
    lib.addHandler(own)
    lib.addHandler(logging.StreamHandler(stream))  # no filter of ours on either handler
    try:
        lib.warning("checkout at /home/%s/repo", "jane.doe@example.com")
    finally:
        lib.removeHandler(own)
        lib.propagate = True
    assert own.records[-1].getMessage() == "checkout at /home/[EMAIL]/repo"
    assert "jane.doe" not in stream.getvalue()


def test_python_warnings_go_through_the_scrubber():
    """In a real process (pytest captures warnings itself): a stage's logging setup routes
    `warnings.warn` through the scrubber instead of straight to stderr."""
    import subprocess
    import sys

    code = ("import warnings; from pipeline.runtime import logs; logs.setup(); "
            "warnings.warn('could not reach 10.1.2.3 for jane.doe@example.com')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "py.warnings" in proc.stderr and "[EMAIL]" in proc.stderr
    assert "[IPV4]" in proc.stderr
    assert "jane.doe" not in proc.stderr and "10.1.2.3" not in proc.stderr
