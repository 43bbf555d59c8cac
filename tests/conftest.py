"""Strict settings for the whole test suite.

Strict dtype promotion turns silent float32/float64 and int/float mixing into errors, so the package is
tested against the strictest mode a user can switch on. Rank promotion raises for the same reason: an
operation on arrays of different ranks (`(3,) + (2, 3)`) is an error unless the broadcast is written out
(`[None]`, `reshape`, `broadcast_to`), which the package does. The code of numpyro's transforms and of
numpyro's and distrax's distributions broadcasts freely: the package runs it with rank promotion allowed.

The package's annotations are checked at run time, as Equinox's tests do: jaxtyping's import hook wraps
every function and Equinox module of `scarlet_like` (every module of it) in a beartype check of its
arguments and return value (dtypes and shapes included, a shape name binding across the arguments of one
call). The hook works only on modules imported after it, so it is installed here, before anything imports
`scarlet_like`. `SCARLET_LIKE_TYPECHECK=0` turns it off (to time its cost, or to debug).
"""

import contextlib
import gc
import importlib.util
import os
import pathlib

import jax
import jaxtyping
import pytest


def _checked_modules() -> list[str]:
    """Every module of `scarlet_like` (found on disk, without importing it)."""
    root = pathlib.Path(importlib.util.find_spec("scarlet_like").submodule_search_locations[0])
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] != "__init__":
            names.append(".".join(parts))
    return names


if os.environ.get("SCARLET_LIKE_TYPECHECK", "1") != "0":
    jaxtyping.install_import_hook(_checked_modules(), "beartype.beartype")

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# Compiled programs are kept in the repository's pytest cache rather than the user's own folder: a
# second run of the suite reads them back (tests/astro/test_components.py and test_freeform.py: 64 s
# -> 33 s), and a fresh checkout starts empty. SCARLET_LIKE_CACHE=0 runs without.
os.environ.setdefault(
    "SCARLET_LIKE_CACHE",
    str(pathlib.Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax-programs"),
)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def unchecked():
    """A context manager turning the runtime type checks off, for a test of the package's own error for
    an argument of the wrong type (which the check would otherwise catch first)."""

    @contextlib.contextmanager
    def off():
        before = jaxtyping.config.jaxtyping_disable
        jaxtyping.config.update("jaxtyping_disable", True)
        try:
            yield
        finally:
            jaxtyping.config.update("jaxtyping_disable", before)

    return off


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every compiled CPU program keeps memory maps alive, and one process may hold at most
    `vm.max_map_count` of them (65530 by default on Linux). The whole suite in one process passed
    that limit (XLA aborted while compiling, in tests/test_cli.py, after some 590 tests); programs are
    reused within a module, rarely across modules."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def docs_section():
    """`run(page, heading, header="")`: runs the python examples of a section of a docs page, in order.

    The section is the text under the heading (`## heading`, `### heading`, ...) of `docs/<page>`, up to
    the next heading of its level or above (lines of code blocks are not headings); `header` is code run
    before it (the imports and data that earlier sections of the page set up). Returns the namespace
    the example leaves. For pages that `tests/test_docs.py` does not run whole (their other examples
    are long fits).
    """
    import re

    def run(page: str, heading: str, header: str = "") -> dict:
        lines = (pathlib.Path(__file__).parents[1] / "docs" / page).read_text().splitlines()
        starts = [i for i, line in enumerate(lines) if re.fullmatch(rf"##+ {re.escape(heading)}", line)]
        assert starts, f"docs/{page} has no section '## {heading}'"
        level = lines[starts[0]].index(" ")
        section, in_code = [], False
        for line in lines[starts[0] + 1 :]:
            in_code ^= line.startswith("```")
            heading_level = len(line) - len(line.lstrip("#"))
            if not in_code and 0 < heading_level <= level and line[heading_level : heading_level + 1] == " ":
                break
            section.append(line)
        blocks = re.findall(r"```python\n(.*?)```", "\n".join(section) + "\n", flags=re.S)
        assert blocks, f"docs/{page}, section '{heading}', has no untitled python example"
        block = "\n".join(blocks)
        namespace: dict = {}
        # user code runs with JAX's default promotion, as in tests/test_docs.py
        with jax.numpy_dtype_promotion("standard"):
            exec(compile(header + block, f"docs/{page}", "exec"), namespace)
        return namespace

    return run
