"""The one exception type the stage runner turns into a one-line error and exit 1."""


class PipelineError(Exception):
    """A problem with inputs or params that the user must fix; the message names the culprit."""
