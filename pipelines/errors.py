"""The one exception type the stage runner turns into a one-line error and exit 1, and the
redaction every message shown to a person goes through."""

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
