"""Saving and loading models: exact values, no pickled code.

A file starts with a magic line and a JSON header: the file format, the version of scarlet_like that
wrote it, the type of what was saved, and the path, shape and dtype of every array leaf. The bytes of
the arrays follow (equinox serialisation). A file written by another version of scarlet_like loads when
its format and layout are those `like` expects; otherwise the error names both versions.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any, BinaryIO

import equinox as eqx
import jax
from jaxtyping import PyTree

from .resolve import path_to_name

__all__ = ["save", "load", "package_version", "read_layout"]

_MAGIC = b"scarlet_like-model\n"
_FORMAT = 1
#: what files from before the version was recorded say
UNRECORDED = "unrecorded (a version from before files recorded it)"


def package_version() -> str:
    """The installed version of scarlet_like (`0.0.0+unknown` in a source tree never installed)."""
    try:
        return version("scarlet_like")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def written_by(header: dict[str, Any]) -> str:
    """`" (written by scarlet_like A; this is B)"` when a file's header records another version, else
    `""`: appended to load errors, so that a file from another version says so."""
    saved, current = header.get("version", UNRECORDED), package_version()
    return "" if saved == current else f" (the file was written by scarlet_like {saved}; this is {current})"


def _layout(model: PyTree) -> list[dict[str, Any]]:
    """Path, shape and dtype of every array leaf: checked on load before any bytes are read."""
    layout = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(model)[0]:
        if eqx.is_array(leaf):
            layout.append({"path": path_to_name(path), "shape": list(leaf.shape), "dtype": str(leaf.dtype)})
    return layout


def save(path: str | os.PathLike, model: PyTree) -> None:
    """Write the array values of a model (or any pytree) to `path`.

    **Arguments:**

    - `path`: file to write.
    - `model`: the model, or any pytree holding models and arrays (a [`scarlet_like.FitResult`][]).
      Only array values are stored (bit-exact, via equinox serialisation), with the version of
      scarlet_like that wrote them; the structure (classes, constraints, priors' forms, which
      parameters are shared, how `Derived` values are computed) comes from the `like` argument of
      [`scarlet_like.load`][], so no code is ever unpickled.
    """
    header = {
        "format": _FORMAT,
        "version": package_version(),
        "type": type(model).__name__,
        "leaves": _layout(model),
    }
    encoded = json.dumps(header).encode()
    with open(path, "wb") as file:
        file.write(_MAGIC)
        file.write(len(encoded).to_bytes(8, "little"))
        file.write(encoded)
        eqx.tree_serialise_leaves(file, model)


def _read_header(path: str | os.PathLike, file: BinaryIO) -> dict[str, Any]:
    if file.read(len(_MAGIC)) != _MAGIC:
        raise ValueError(f"{os.fspath(path)!r} is not a file written by scarlet_like.save")
    size = int.from_bytes(file.read(8), "little")
    header = json.loads(file.read(size))
    if header.get("format") != _FORMAT:
        raise ValueError(
            f"load: {os.fspath(path)!r} has file format {header.get('format')!r}, written by scarlet_like "
            f"{header.get('version', UNRECORDED)}; this scarlet_like ({package_version()}) reads format "
            f"{_FORMAT}: load it with the version that wrote it, or write it again with this one"
        )
    return header


def read_layout(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The `{"path", "shape", "dtype"}` of every array saved in a file written by `save`."""
    with open(path, "rb") as file:
        return _read_header(path, file)["leaves"]


def load(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Read values written by [`scarlet_like.save`][] into a model shaped like `like`.

    **Arguments:**

    - `path`: file written by `save`.
    - `like`: a model with the same structure (e.g. built by the same code); its values are ignored.
      Parameters shared in `like` are shared in what is returned.

    **Returns:**

    `like` with the saved values. Raises `ValueError` naming the first leaf whose path, shape or dtype
    differs, and both versions of scarlet_like when the file was written by another one.
    """
    with open(path, "rb") as file:
        header = _read_header(path, file)
        saved, expected = header["leaves"], _layout(like)
        kind = header.get("type")
        hint = (
            f"; the file holds a {kind}, `like` is a {type(like).__name__}"
            if kind is not None and kind != type(like).__name__
            else ""
        )
        for index, (old, new) in enumerate(zip(saved, expected, strict=False)):
            if old != new:
                raise ValueError(
                    f"load: leaf {index} differs between the file and `like`: saved {old}, expected "
                    f"{new}{hint}{written_by(header)}"
                )
        if len(saved) != len(expected):
            raise ValueError(
                f"load: the file holds {len(saved)} arrays but `like` has {len(expected)}"
                f"{hint}{written_by(header)}"
            )
        return eqx.tree_deserialise_leaves(file, like)
