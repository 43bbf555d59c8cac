"""Weak types out of loop carries: one signature for the state going into and out of compiled code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import PyTree


def strong(tree: PyTree) -> PyTree:
    """`tree` with every weakly typed leaf given its full dtype.

    optax and blackjax initialise some counters and scalars from Python numbers (weakly typed); after
    a step they come back strongly typed. A state handed from one compiled call to the next must keep
    one signature, or the second call compiles again.
    """
    return jax.tree_util.tree_map(lambda leaf: jnp.array(leaf, dtype=jnp.result_type(leaf)), tree)
