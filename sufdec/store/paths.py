"""Where a store lives: the platform default, and the one place an explicit choice, the
``SUFDEC_STORE`` setting and that default are weighed against each other.

The store package never reads environment variables itself: the edge (the CLI, the
session) passes its environment in, once, to ``resolve_store_path`` and hands the
resulting path down. The function is pure, so tests pass a plain dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import EmptyStorePathError

ENV_VAR = "SUFDEC_STORE"


def default_store_path() -> Path:
    """The platform default: ``<user data dir>/sufdec/store`` (platformdirs)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("sufdec")) / "store"


def resolve_store_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """``explicit`` (with ``~`` expanded) if given, else ``environ["SUFDEC_STORE"]`` if set,
    else ``default_store_path()``. An empty value is an error, not the default: ``Path("")``
    is the current directory, and an empty variable is more often a mistake than a choice."""
    if explicit is not None:
        if isinstance(explicit, str) and explicit.strip() == "":
            raise EmptyStorePathError(
                f"the store path is empty: give a directory, or leave it out for ${ENV_VAR} or the default store"
            )
        return Path(explicit).expanduser()
    chosen = environ.get(ENV_VAR)
    if chosen is not None:
        if chosen.strip() == "":
            raise EmptyStorePathError(
                f"{ENV_VAR} is set but empty: unset it for the default store, or give a directory"
            )
        return Path(chosen).expanduser()
    return default_store_path()
