"""The service's log: a request refused for bad input is one line, not a traceback (BentoML logs every exception
of an API with its traceback, hundreds of kilobytes for a burst of bad requests); server errors keep theirs."""

import logging

from pydantic import ValidationError

# the logger BentoML's HTTP app reports API exceptions with (`log_exception`)
HTTP_APP_LOGGER = "bentoml._internal.server.http_app"


def client_error_status(exc: BaseException | None) -> int | None:
    """The 4xx status an exception answers with, or None for anything else (a server error)."""
    if isinstance(exc, ValidationError):
        return 400
    code = getattr(getattr(exc, "error_code", None), "value", None)
    return code if isinstance(code, int) and 400 <= code < 500 else None


class OneLineClientErrors(logging.Filter):
    """Turns the traceback of a client error into one line naming the status and the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = client_error_status(exc)
        if status is not None and exc is not None:
            reason = (str(exc).strip().splitlines() or [""])[0][:300]
            record.msg, record.args = f"{record.getMessage()}: {status} {type(exc).__name__}: {reason}", None
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    """Install the filter on BentoML's HTTP app logger (once per process)."""
    logger = logging.getLogger(HTTP_APP_LOGGER)
    if not any(isinstance(f, OneLineClientErrors) for f in logger.filters):
        logger.addFilter(OneLineClientErrors())
