"""The one exception type the stage runner turns into a one-line error and exit 1."""


class PipelineError(Exception):
    """A problem with inputs or params that the user must fix; the message names the culprit."""


def brief(exc: BaseException, limit: int = 300) -> str:
    """A third-party error on one short line, fit to quote inside a PipelineError message."""
    return " ".join(str(exc).split())[:limit]
