"""Great Expectations' Data Docs for one checkpoint result, with Jinja templates compiled once.

GX (checked on 1.24) gives every renderer view its own ``jinja2.Environment`` and no option
to share one, so each Data Docs build compiles about 51 templates, most of them several times
over (roughly 0.2-0.4 s of a build, whatever the row count). During a build, every new view's
environment gets one process-wide in-memory bytecode cache: Jinja's own mechanism, which
checks each template's source checksum before reusing its code, so a changed template is
compiled afresh. Every view's environment is created with the same options, so their compiled
code is interchangeable. If a future GX stops exposing ``view.env`` as a Jinja environment,
the shim does nothing and the build is as slow as before, with the same pages.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import jinja2


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept in memory for the life of the process (a few hundred KB)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # a stale checksum resets the bucket: recompiled

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATES = _MemoryBytecodeCache()
# Patching a class is process-wide: one build at a time installs and removes the shim.
_SHIM_LOCK = threading.Lock()


@contextlib.contextmanager
def _shared_templates() -> Iterator[None]:
    """While open, each new GX renderer view compiles through ``_TEMPLATES``."""
    from great_expectations.render.view.view import DefaultJinjaView

    original = DefaultJinjaView.__init__

    def init(view: Any, *args: Any, **kwargs: Any) -> None:
        original(view, *args, **kwargs)
        env = getattr(view, "env", None)
        if isinstance(env, jinja2.Environment) and env.bytecode_cache is None:
            env.bytecode_cache = _TEMPLATES

    with _SHIM_LOCK:
        DefaultJinjaView.__init__ = init  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            DefaultJinjaView.__init__ = original  # type: ignore[method-assign]


def build_data_docs(context: Any, result: Any, site_name: str) -> None:
    """Render ``result`` (a checkpoint result) and its suites into the site ``site_name``.

    One build for both results rather than the checkpoint's UpdateDataDocsAction, which builds
    once per result and renders the index page twice: the same pages, sooner. Only our site: by
    default GX also renders every page into the ephemeral context's own site, a temporary folder
    that is never removed.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suites = [ExpectationSuiteIdentifier(name=v.suite_name) for v in result.run_results.values()]
    with _shared_templates():
        context.build_data_docs(
            site_names=[site_name], resource_identifiers=[*result.run_results, *suites]
        )
