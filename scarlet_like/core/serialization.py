"""Saving and loading models: exact values, no pickled code."""

from __future__ import annotations

import json
import os
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from .resolve import path_to_name

__all__ = ["save", "load"]

_MAGIC = b"scarlet_like-model\n"
_FORMAT = 1


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
    - `model`: the model. Only array values are stored (bit-exact, via equinox serialisation); the
      structure (classes, constraints, priors' forms) comes from the `like` argument of
      [`scarlet_like.load`][], so no code is ever unpickled.
    """
    header = json.dumps({"format": _FORMAT, "leaves": _layout(model)}).encode()
    with open(path, "wb") as file:
        file.write(_MAGIC)
        file.write(len(header).to_bytes(8, "little"))
        file.write(header)
        eqx.tree_serialise_leaves(file, model)


def load(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Read values written by [`scarlet_like.save`][] into a model shaped like `like`.

    **Arguments:**

    - `path`: file written by `save`.
    - `like`: a model with the same structure (e.g. built by the same code); its values are ignored.

    **Returns:**

    `like` with the saved values. Raises `ValueError` naming the first leaf whose path, shape or dtype
    differs.
    """
    with open(path, "rb") as file:
        if file.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{os.fspath(path)!r} is not a file written by scarlet_like.save")
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
        if header.get("format") != _FORMAT:
            raise ValueError(f"unsupported file format {header.get('format')!r} in {os.fspath(path)!r}")
        saved, expected = header["leaves"], _layout(like)
        for index, (old, new) in enumerate(zip(saved, expected, strict=False)):
            if old != new:
                raise ValueError(
                    f"load: leaf {index} differs between the file and `like`: saved {old}, expected {new}"
                )
        if len(saved) != len(expected):
            raise ValueError(f"load: the file holds {len(saved)} arrays but `like` has {len(expected)}")
        return eqx.tree_deserialise_leaves(file, like)
