"""JAX's persistent compilation cache, on by default: a fresh process reuses the programs compiled by
earlier ones instead of compiling them again.

Compilation is most of what a user waits for in a fresh process (the HSC demo blend: 9.4 s from
scene to fitted model, 2.0 s of it when the programs are already compiled). JAX can keep compiled
programs on disk, keyed by a hash of the program itself, of the compiler options, of the JAX version
and of the device; importing scarlet_like turns that on in a per-user folder unless told otherwise.
A changed model is a changed program and so a different key: it is compiled anew, never given
another model's program. The fit's own programs are kept in the same folder, exported so that a
fresh process need not trace them either (`_programs.py`).

- `SCARLET_LIKE_CACHE=0` (or `off`, `false`, `no`) before the import: leave JAX's setting alone.
- `SCARLET_LIKE_CACHE=/some/folder`: use that folder.
- Default: `$XDG_CACHE_HOME/scarlet_like/jax`, or `~/.cache/scarlet_like/jax`.

A cache folder the user has already given JAX (`JAX_COMPILATION_CACHE_DIR`, or
`jax.config.update("jax_compilation_cache_dir", ...)` before the import) is kept, with JAX's own
settings. The folder grows
with the programs compiled; delete it at any time to reclaim the space.
"""

from __future__ import annotations

import os
import pathlib

import jax

__all__ = ["compilation_cache_folder"]

_OFF = ("0", "off", "false", "no")


def _default_folder() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "scarlet_like" / "jax"


def _enable_from_environment() -> None:
    """Point JAX's persistent compilation cache at scarlet_like's folder (called once, at import)."""
    setting = os.environ.get("SCARLET_LIKE_CACHE", "").strip()
    if setting.lower() in _OFF or _folder_given_to_jax() is not None:
        return
    folder = pathlib.Path(setting).expanduser() if setting else _default_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: compile as without a cache rather than fail the import
    if not os.access(folder, os.W_OK):
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # every program, not only those that take a second to compile (JAX's default): a fresh process
    # building and fitting the HSC demo blend compiles about 400 small programs (the eager steps of
    # `sl.init.scene`) besides the fit's, and reading them back is what halves its wait (32.7 s ->
    # 14.1 s on a shared 2-core machine; 7 MB on disk)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def compilation_cache_folder() -> pathlib.Path | None:
    """Where compiled programs are kept between processes, or None when the cache is off.

    **Returns:**

    JAX's `jax_compilation_cache_dir` as a path: scarlet_like's default folder, the one given by the
    `SCARLET_LIKE_CACHE` environment variable, or one the user gave JAX; `None` when none is set
    (`SCARLET_LIKE_CACHE=0`).
    """
    folder = _folder_given_to_jax()
    return None if folder is None else pathlib.Path(folder)


def _folder_given_to_jax() -> str | None:
    # read by name: the option is not among the attributes JAX's type stubs declare
    return getattr(jax.config, "jax_compilation_cache_dir", None)
