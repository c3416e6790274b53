"""The one exception type the stage runner turns into a one-line error and exit 1, and the
redaction every message shown to a person goes through."""

import logging
import re

# The password of a URL's userinfo (``scheme://user:password@host``). Greedy up to the last
# "@" before the path, as urllib splits it, so a password holding "@" is masked whole.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*):[^/\s]*@")
# Secrets passed as query parameters (libpq's ``?password=``, tokens in presigned URLs).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|access_token|api_key)=)[^&;\s'\"]*",
    re.IGNORECASE,
)


class PipelineError(Exception):
    """A problem with inputs or params that the user must fix; the message names the culprit."""


def redact(text: str) -> str:
    """``text`` with the credentials of every URI in it masked, fit for logs, errors, reports
    and tags: ``http://user:secret@host/`` becomes ``http://user:***@host/``."""
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _QUERY_SECRET.sub(r"\g<head>***", text)


def brief(exc: BaseException, limit: int = 300) -> str:
    """A third-party error on one short line, fit to quote inside a PipelineError message;
    third-party messages quote URLs as given (MLflow's "API request to <url> failed"), so
    credentials are masked here."""
    return redact(" ".join(str(exc).split()))[:limit]


class RedactSecrets(logging.Filter):
    """Masks credentials in a record's message and traceback: third-party errors quote
    MLFLOW_TRACKING_URI with its password, and the log is read (and kept) by others."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the handler's to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_handlers(logger: logging.Logger) -> None:
    """Put ``RedactSecrets`` on the handlers of ``logger`` (once)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
