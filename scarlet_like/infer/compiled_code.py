"""Keeping a long run's compiled code within the operating system's limit on memory mappings.

XLA's CPU backend loads every compiled executable into memory mappings of its own, and JAX keeps the
executables in its caches for the life of the process. Measured on the bundled HSC blend (jax 0.10.2,
CPU): one fit of a scene structure not seen before compiles about 180 executables (the fit loop and
the small operations around it) and adds about 3,000 mappings. Linux allows a process 65,530 by
default (`vm.max_map_count`), so about twenty different structures in one process (the alternatives
of `sl.choose_sources` on a seven-source blend; a catalog of many blend shapes) end in XLA's "LLVM
compilation error: Cannot allocate memory" and a dead process, with memory to spare.

`release_if_near_limit` is called by every entry point that compiles (`fit`, `fit_starts`,
`fit_many`, `sample`, `laplace`): past a share of the limit it clears JAX's caches
(`jax.clear_caches()`, which unmaps them; measured: from 11,500 mappings back to 850). What is in
use keeps working; what is called again compiles again.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import jax

from ..core.tree import any_traced

__all__ = ["memory_maps", "release_if_near_limit", "NEAR_LIMIT"]

#: Share of the process's mapping limit past which the compiled code is released.
NEAR_LIMIT = 0.6

_MAPS = Path("/proc/self/maps")
_LIMIT = Path("/proc/sys/vm/max_map_count")


def memory_maps() -> tuple[int, int] | None:
    """The process's memory mappings and the system's limit on them, `(used, limit)`; `None` where
    the system does not tell (not Linux)."""
    try:
        limit = int(_LIMIT.read_text().split()[0])
        with _MAPS.open("rb") as file:
            used = sum(1 for _ in file)
    except (OSError, ValueError, IndexError):
        return None
    return used, limit


def release_if_near_limit(caller: str, arguments: Any = None, near_limit: float = NEAR_LIMIT) -> bool:
    """Clear JAX's compilation caches when the process's memory mappings pass `near_limit` of the
    system's limit.

    **Arguments:**

    - `caller`: named in the warning.
    - `arguments`: the caller's arguments (a pytree); nothing is cleared when one of them is being
      traced (a call inside the user's `jit` or `vmap`, which is compiling as it runs).
    - `near_limit`: the share of the limit that triggers the release.

    **Returns:**

    Whether the caches were cleared (with a `RuntimeWarning` saying so: the next calls of fits seen
    before compile again).
    """
    if any_traced(arguments):
        return False
    counts = memory_maps()
    if counts is None:
        return False
    used, limit = counts
    if used < near_limit * limit:
        return False
    jax.clear_caches()
    warnings.warn(
        f"{caller}: this process holds {used} memory mappings, {used / limit:.0%} of the system's limit "
        f"(vm.max_map_count = {limit}), mostly compiled code of earlier fits; JAX's caches were cleared so "
        "that compiling does not fail ('LLVM compilation error: Cannot allocate memory'). Fits of models "
        "seen before will compile again; to keep them, raise the limit (sysctl -w vm.max_map_count=262144).",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
