"""Priors given by neural networks: a learned log-density (a normalizing flow) or a score function.

A network's weights are *data* of the model: array leaves of the prior, held apart from the network's
structure (its layer sizes, activation functions), which is static. Three consequences:

- the weights are never free parameters: only [`scarlet_like.Parameter`][]s are, and the network is
  the prior of one;
- a fit or a sampler compiled for one set of weights runs with any other of the same architecture
  without compiling again (the weights are arguments of the compiled program, not constants in it);
- `sl.save` / `sl.load` store and restore them with the rest of the model.

Passing a bare Equinox network as `prior=` instead makes its weights static metadata (Equinox warns "A
JAX array is being set as static!"): every new set of weights is a new program. Wrap it in
[`scarlet_like.FlowPrior`][] or [`scarlet_like.ScorePrior`][].
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .priors import Prior

__all__ = ["NetworkPrior", "FlowPrior", "ScorePrior", "has_log_density"]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _leaf_key(leaf: Any) -> Any:
    """What a non-array leaf of a network's structure contributes to its compiled code, hashable."""
    if isinstance(leaf, (bool, int, float, complex, str, type(None))):
        return (type(leaf).__name__, leaf)
    if callable(leaf):
        return ("callable", getattr(leaf, "__module__", None), getattr(leaf, "__qualname__", repr(leaf)))
    return (type(leaf).__qualname__, _ADDRESS.sub("", repr(leaf)))


class Architecture:
    """The non-array part of a network (classes, layer sizes, activation functions), held static and
    compared by what the compiled code depends on rather than by identity.

    Why: flowjax builds each coupling layer with a closure of its own (made anew for every flow), and
    the static part of two flows of one architecture compares unequal (and is not even hashable), so
    that every new set of weights compiled a new program. Here two structures are equal when their tree
    structures, static fields and non-array leaves print the same (memory addresses removed) and their
    functions have the same module and qualified name: then one program serves both.
    """

    __slots__ = ("network", "key")

    def __init__(self, network: Any):
        leaves, treedef = jax.tree_util.tree_flatten(network)
        self.network = network
        self.key = (_ADDRESS.sub("", str(treedef)), tuple(_leaf_key(leaf) for leaf in leaves))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Architecture({type(self.network).__name__})"


class NetworkPrior(Prior):
    """Base of the priors given by a network: weights as leaves, structure static.

    **Arguments** (of the concrete classes):

    - `network`: an Equinox module (a flowjax distribution, an MLP, ...).
    - `shape`: the shape of the parameter value the prior is put on.
    - `preprocess`: `None`, or an Equinox module mapping a value to the network's input (of the
      network's own shape), with an optional method `log_prob_extra(value) -> scalar` whose result is
      added to the log density (for terms the network does not see, such as a normalised image's
      overall scale). [`scarlet_like.ImageInput`][] is the one for free-form images.

    Subclasses say whether the log density's *value* is known (`has_log_density`).
    """

    #: Whether `log_prob` returns the log density's value (`False`: only its gradient is right).
    has_log_density: ClassVar[bool] = True

    weights: PyTree
    structure: Architecture = eqx.field(static=True)
    preprocess: Any
    value_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, network: Any, shape: tuple[int, ...], preprocess: Any = None):
        if not isinstance(network, eqx.Module):
            raise TypeError(
                f"{type(self).__name__}: `network` must be an Equinox module (a flowjax distribution, an "
                f"eqx.nn.MLP, ...), got {type(network).__name__}"
            )
        self.weights, structure = eqx.partition(network, eqx.is_array)
        self.structure = Architecture(structure)
        self.preprocess = preprocess
        self.value_shape = tuple(int(side) for side in shape)

    @property
    def network(self) -> Any:
        """The network, its weights put back into its structure."""
        return eqx.combine(self.weights, self.structure.network)

    def network_input(self, value: Array) -> Array:
        """What the network sees of `value`: `preprocess(value)`, or `value` itself."""
        return value if self.preprocess is None else self.preprocess(value)

    def _extra(self, value: Array) -> Array:
        extra = getattr(self.preprocess, "log_prob_extra", None)
        return jnp.zeros((), value.dtype) if extra is None else extra(value)

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        raise TypeError(
            f"{type(self).__name__}: draws of the network's input cannot be mapped back to parameter values "
            "(the preprocessing is not inverted); start the parameter from the data or a fitted profile"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value_shape

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.value_shape


class FlowPrior(NetworkPrior):
    """A learned log density: a normalizing flow (a [flowjax](https://github.com/danielward27/flowjax)
    distribution, or any Equinox module with `log_prob`) evaluated at the preprocessed value.

    `log_prob(value) = strength * network.log_prob(preprocess(value)) + preprocess.log_prob_extra(value)`:
    the flow's density of the network's input, not of the value (the preprocessing's Jacobian is left out,
    so that the prior rewards what the flow finds likely, whatever the box). Its value is known, so a
    model with it can be sampled (NUTS needs the value for its energy) and its evidence estimated.

    **Arguments:** `network` (with a `log_prob` method), `shape`, `preprocess`: see
    [`NetworkPrior`][scarlet_like.NetworkPrior]; `strength`: a factor on the flow's log density (a
    tempered prior: below 1 the data weigh more), default 1.
    """

    strength: float = eqx.field(static=True)

    def __init__(self, network: Any, shape: tuple[int, ...], preprocess: Any = None, strength: float = 1.0):
        if isinstance(network, eqx.Module) and not callable(getattr(network, "log_prob", None)):
            raise TypeError(
                f"FlowPrior: the network {type(network).__name__} has no `log_prob` method; a score model "
                "(the gradient of a log density) goes in sl.ScorePrior"
            )
        if not (isinstance(strength, (int, float)) and strength > 0 and strength < float("inf")):
            raise ValueError(f"FlowPrior: `strength` must be a positive number, got {strength!r}")
        super().__init__(network, shape, preprocess)
        self.strength = float(strength)

    def log_prob(self, value: Array) -> Float[Array, ""]:
        network = self.network
        inputs = self.network_input(value)
        inputs = inputs.reshape(getattr(network, "shape", inputs.shape))
        learned = jnp.sum(network.log_prob(inputs)).astype(value.dtype)
        if self.strength != 1.0:
            learned = jnp.asarray(self.strength, value.dtype) * learned
        return learned + self._extra(value)


class ScorePrior(NetworkPrior):
    """A prior known only by its score, the gradient of its log density (what a score-based diffusion
    model learns): `network(u)` is `d log p(u) / du` at the network's input `u`.

    **The value of its log density is unknown.** `log_prob` returns `0` (plus the preprocessing's
    `log_prob_extra`) with the right gradient: the gradient is `network(u)` pulled back through the
    preprocessing, by a custom JVP rule (JAX transposes it for reverse mode, so `jax.grad` gets the
    score; forward mode and Hessians, as `sl.laplace` uses, work too). What that means:

    - `sl.fit` follows the right gradient, and finds the same maximum; the log posterior it reports
      leaves this prior's term out.
    - No evidence: the normalisation and even relative values of the log posterior are unknown, and
      `sl.evidence` refuses such a model.
    - NUTS cannot use it: its energy (the negative log posterior plus the kinetic energy) weighs the
      points of each trajectory and detects divergences, and with the term missing it would sample
      another distribution without telling. `sl.sample` therefore refuses a model with a score prior
      (naming the parameter); use a [`FlowPrior`][scarlet_like.FlowPrior] to sample.

    The network's weights get no gradient through this term (a score model is trained by score
    matching, not by differentiating its own log density).

    **Arguments:** `network` (called with the network's input, returns an array of its shape), `shape`,
    `preprocess`: see [`NetworkPrior`][scarlet_like.NetworkPrior].
    """

    has_log_density: ClassVar[bool] = False

    def __init__(self, network: Any, shape: tuple[int, ...], preprocess: Any = None):
        if not callable(network):
            raise TypeError(f"ScorePrior: the network {type(network).__name__} is not callable")
        super().__init__(network, shape, preprocess)

    def score(self, value: Array) -> Array:
        """The network's score at the preprocessed `value` (in the network's input space)."""
        return self.network(self.network_input(value))

    def log_prob(self, value: Array) -> Float[Array, ""]:
        inputs = self.network_input(value)
        return _unknown_log_density(self.structure, self.weights, inputs).astype(value.dtype) + self._extra(
            value
        )


def _score_term(structure: Architecture, weights: PyTree, inputs: Array) -> Array:
    return jnp.zeros((), inputs.dtype)


_unknown_log_density: Any = jax.custom_jvp(_score_term, nondiff_argnums=(0,))


@_unknown_log_density.defjvp
def _score_term_jvp(
    structure: Architecture, primals: tuple[Any, ...], tangents: tuple[Any, ...]
) -> tuple[Array, Array]:
    weights, inputs = primals
    _, inputs_dot = tangents
    score = eqx.combine(weights, structure.network)(inputs)
    # the weights' tangent is dropped: no gradient reaches the weights through this term
    return jnp.zeros((), inputs.dtype), jnp.sum(score * inputs_dot).astype(inputs.dtype)


def has_log_density(prior: Any) -> bool:
    """Whether a prior's `log_prob` gives its log density's value (not only its gradient)."""
    return bool(getattr(prior, "has_log_density", True))
