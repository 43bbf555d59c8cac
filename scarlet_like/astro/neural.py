"""A learned prior on free-form galaxy images: the preprocessing that fits any box to the network's
input, a training set drawn with the package's own profiles, training with optax, and the small flow
shipped with the package.

```python
prior = sl.galaxy_flow_prior((21, 21))      # the shipped flow, for a 21 x 21 free-form image
morphology = sl.ImageMorphology(sl.Parameter(image, constraint=sl.constraints.positive(), prior=prior))
```
"""

from __future__ import annotations

import functools
import json
import math
import time
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ..core.networks import FlowPrior
from ..core.serialization import load, save
from . import profiles
from .freeform import SUM_LOG_WIDTH
from .psf import phasor

__all__ = [
    "ImageInput",
    "FlowConfig",
    "galaxy_flow",
    "galaxy_flow_prior",
    "galaxy_images",
    "train_galaxy_flow",
    "save_galaxy_flow",
    "load_galaxy_flow",
]

#: File of the shipped weights, in the package's `data/` folder, with its configuration beside it.
SHIPPED = "galaxy_flow.eqx"


def _import_flowjax() -> Any:
    try:
        import flowjax.distributions
        import flowjax.flows
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "neural priors need flowjax: install scarlet_like's `neural` extra (pip install "
            "'scarlet_like[neural]')"
        ) from error
    return flowjax


class ImageInput(eqx.Module):
    """What a network prior sees of a free-form image: the image fitted to the network's input size,
    scaled to unit sum, in an asinh scale.

    **Size handling.** A box no larger than `shape` on both sides is padded with zeros around it
    (centred; odd sides stay centred on the same pixel). A larger box is resized to `shape` by linear
    interpolation with antialiasing (`jax.image.resize`), which shrinks the galaxy by the ratio of the
    sides: the training set's sizes span a factor 5 for that reason. Either way the result is then
    scaled to unit sum.

    `log_prob_extra(image)` pins the image's sum (which the renderer divides out) with the same Normal on
    its log as [`scarlet_like.FreeFormPrior`][]: the network sees only the normalised image.

    **Arguments:**

    - `shape`: `(H, W)` of the network's input.
    - `softening`: the asinh scale: the network sees `asinh(x / softening)` of the unit-sum image `x`,
      linear for faint pixels (below `softening`), logarithmic for the core.
    """

    shape: tuple[int, int] = eqx.field(static=True)
    softening: float = eqx.field(static=True, default=0.002)

    def fitted(self, image: Float[Array, "h w"]) -> Float[Array, "H W"]:
        """The image padded or resized to `shape`, scaled to unit sum."""
        height, width = self.shape
        h, w = image.shape
        if h <= height and w <= width:
            top, left = (height - h) // 2, (width - w) // 2
            image = jnp.pad(image, ((top, height - h - top), (left, width - w - left)))
        else:
            image = jax.image.resize(image, (height, width), method="linear", antialias=True)
        return image / jnp.sum(image)

    def __call__(self, image: Float[Array, "h w"]) -> Float[Array, "H W"]:
        return jnp.arcsinh(self.fitted(image) / jnp.asarray(self.softening, image.dtype))

    def log_prob_extra(self, image: Float[Array, "h w"]) -> Float[Array, ""]:
        scale = jnp.log(jnp.sum(image)) / SUM_LOG_WIDTH
        return -0.5 * scale**2


class FlowConfig(NamedTuple):
    """The architecture of the galaxy flow: what `sl.load` needs to rebuild it before filling in the
    weights.

    - `side`: the network's input is `side x side` pixels.
    - `layers`, `width`: coupling layers of the flow, width of each conditioner's hidden layer.
    - `softening`: see [`scarlet_like.ImageInput`][].
    """

    side: int = 15
    layers: int = 6
    width: int = 96
    softening: float = 0.002


def galaxy_flow(config: FlowConfig | None = None, key: PRNGKeyArray | None = None) -> Any:
    """An untrained flowjax coupling flow over `side * side` pixels (affine couplings on a standard
    Normal base), the architecture of the shipped prior."""
    flowjax = _import_flowjax()
    config = FlowConfig() if config is None else config
    key = jax.random.key(0) if key is None else key
    return flowjax.flows.coupling_flow(
        key,
        base_dist=flowjax.distributions.Normal(jnp.zeros(config.side * config.side)),
        flow_layers=config.layers,
        nn_width=config.width,
    )


def galaxy_images(key: PRNGKeyArray, count: int, side: int = 15) -> Float[Array, "N side side"]:
    """Galaxy images drawn with the package's own profiles, PSF-free, unit flux, centred.

    Each is a Sérsic profile (index 0.5 to 4) with, for a third of them, a de Vaucouleurs bulge
    (10-70 % of the light, radius 0.2-0.5 of the disk's, rounder), and for another third an exponential
    disk with three to five star-forming knots (Gaussians of 0.5-1 px holding 10-30 % of the light,
    within the half-light radius); half-light radii log-uniform from 0.8 to 4 px, reduced shears up to
    0.6 in any direction, centres within 0.3 px of the central pixel. Integrated over pixels.
    """
    # in chunks of one size (the last one filled up, the extra images dropped): all at once, a 21-pixel
    # training set's transforms would take gigabytes, and each new size compiles the drawing anew
    draw = _galaxy_drawer(int(side))
    chunk = min(count, 250)
    keys = jax.random.split(key, -(-count // chunk) * chunk).reshape(-1, chunk)
    return jnp.concatenate([draw(part) for part in keys])[:count]


@functools.cache
def _galaxy_drawer(side: int) -> Any:
    """The jitted, vmapped drawing of one galaxy image of `side` pixels from its key (made once per side:
    its compilation takes seconds)."""
    # drawn on a grid twice as fine and summed over 2 x 2 blocks: a cuspy profile's transform has not
    # died out at the pixel grid's Nyquist frequency, and drawn directly it rings along the axes
    size = 2 * (1 << (2 * side - 1).bit_length())
    ky = jnp.asarray(2 * np.pi * np.fft.fftfreq(size)[:, None], jnp.float32)
    kx = jnp.asarray(2 * np.pi * np.fft.rfftfreq(size)[None, :], jnp.float32)

    def one(key: PRNGKeyArray) -> Array:
        k = jax.random.split(key, 13)
        kind = jax.random.randint(k[0], (), 0, 3)
        r_half = jnp.exp(jax.random.uniform(k[1], (), minval=math.log(0.8), maxval=math.log(4.0)))
        shear = 0.6 * jnp.sqrt(jax.random.uniform(k[2], ()))
        angle = jax.random.uniform(k[3], (), maxval=jnp.pi)
        g1, g2 = shear * jnp.cos(2 * angle), shear * jnp.sin(2 * angle)
        n = jnp.where(kind == 2, 1.0, jax.random.uniform(k[4], (), minval=0.5, maxval=4.0))
        bulge = jnp.where(kind == 1, jax.random.uniform(k[5], (), minval=0.1, maxval=0.7), 0.0)
        knots = jnp.where(kind == 2, jax.random.uniform(k[6], (), minval=0.1, maxval=0.3), 0.0)
        bulge_radius = r_half * jax.random.uniform(k[7], (), minval=0.2, maxval=0.5)
        # lengths in fine pixels below: twice the coarse ones
        transform = (1 - bulge - knots) * profiles.sersic_ft(ky, kx, n, 2 * r_half, g1, g2)
        transform = transform + bulge * profiles.sersic_ft(ky, kx, 4.0, 2 * bulge_radius, 0.5 * g1, 0.5 * g2)
        number = jax.random.randint(k[8], (), 3, 6)
        radius = 2 * r_half * jnp.sqrt(jax.random.uniform(k[9], (5,)))
        where = jax.random.uniform(k[10], (5,), maxval=2 * jnp.pi)
        # a Gaussian's half-light radius is 1.1774 sigma
        sigmas = jax.random.uniform(k[11], (5,), minval=0.5, maxval=1.0)
        share = jnp.where(jnp.arange(5) < number, 1.0 / number.astype(jnp.float32), 0.0)
        transform = transform.astype(jnp.complex64)
        for i in range(5):
            knot = knots * share[i] * profiles.sersic_ft(ky, kx, 0.5, 2 * 1.1774 * sigmas[i], 0.0, 0.0)
            shift = phasor(ky * radius[i] * jnp.sin(where[i]) + kx * radius[i] * jnp.cos(where[i]))
            transform = transform + knot.astype(shift.dtype) * shift
        # the centre within 0.3 px of the central pixel's, which is half a fine pixel past the grid's
        offset = 0.5 + 2 * jax.random.uniform(k[12], (2,), minval=-0.3, maxval=0.3)
        transform = transform * phasor(ky * offset[0] + kx * offset[1])
        transform = transform * profiles.pixel_ft(ky, kx).astype(transform.dtype)
        fine = jnp.fft.fftshift(jnp.fft.irfft2(transform, s=(size, size)))
        start = size // 2 - 2 * (side // 2)
        fine = jax.lax.dynamic_slice(fine, (start, start), (2 * side, 2 * side))
        image = jnp.maximum(fine.reshape(side, 2, side, 2).sum(axis=(1, 3)), 0.0)
        return image / jnp.sum(image)

    return jax.jit(jax.vmap(one))


def train_galaxy_flow(
    key: PRNGKeyArray,
    config: FlowConfig | None = None,
    *,
    count: int = 20000,
    steps: int = 3000,
    batch: int = 256,
    learning_rate: float = 1e-3,
    noise: float = 0.05,
    log: Any = None,
) -> tuple[Any, dict[str, float]]:
    """Train the galaxy flow on [`galaxy_images`][scarlet_like.astro.neural.galaxy_images] with optax
    (Adam, cosine-decayed learning rate, maximum likelihood).

    **Arguments:**

    - `key`: random key (the training set, the initial weights and the batches).
    - `config`: the architecture.
    - `count`: training images (a tenth more are drawn for validation).
    - `steps`, `batch`, `learning_rate`: the optimisation.
    - `noise`: standard deviation of Gaussian noise added to each batch in the network's (asinh) input
      space. Without it the flow learns a density concentrated on the thin set of noiseless profiles,
      whose gradients are large and sharp: NUTS on a free-form image then takes tiny steps.
    - `log`: `None`, or a callable given a line of progress now and then.

    **Returns:**

    `(flow, stats)`: the trained flowjax flow and `{"train": ..., "validation": ..., "seconds": ...}`,
    the mean negative log likelihood per image at the end.
    """
    started = time.perf_counter()
    config = FlowConfig() if config is None else config
    data_key, init_key, batch_key = jax.random.split(key, 3)
    preprocess = ImageInput((config.side, config.side), config.softening)
    images = galaxy_images(data_key, count + count // 10, config.side)
    inputs = jax.vmap(preprocess)(images).reshape(images.shape[0], -1)
    train, validation = inputs[:count], inputs[count:]
    flow = galaxy_flow(config, init_key)
    weights, structure = eqx.partition(flow, eqx.is_inexact_array)
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1))
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(schedule))
    state = optimizer.init(weights)

    def loss(weights: Any, x: Array) -> Array:
        return -jnp.mean(eqx.combine(weights, structure).log_prob(x))

    @jax.jit
    def step(weights: Any, state: Any, key: PRNGKeyArray) -> tuple[Any, Any, Array]:
        pick, jitter = jax.random.split(key)
        rows = jax.random.choice(pick, train.shape[0], (batch,), replace=False)
        x = train[rows] + noise * jax.random.normal(jitter, (batch, train.shape[1]))
        value, grads = jax.value_and_grad(loss)(weights, x)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes integer counters with floats
            updates, state = optimizer.update(grads, state, weights)
        return optax.apply_updates(weights, updates), state, value

    value = jnp.nan
    for index, step_key in enumerate(jax.random.split(batch_key, steps)):
        weights, state, value = step(weights, state, step_key)
        if log is not None and (index % 250 == 0 or index == steps - 1):
            log(f"step {index + 1}/{steps}: loss {float(value):.1f}")
    flow = eqx.combine(weights, structure)
    jitter = noise * jax.random.normal(jax.random.key(1), validation.shape)
    stats = {
        "train": float(value),
        "validation": float(eqx.filter_jit(loss)(weights, validation + jitter)),  # op by op: seconds
        "seconds": time.perf_counter() - started,
    }
    return flow, stats


def save_galaxy_flow(path: str | Path, flow: Any, config: FlowConfig) -> None:
    """Write a trained flow with `sl.save`, and its configuration beside it (`<path>.json`)."""
    save(path, flow)
    Path(f"{path}.json").write_text(json.dumps(config._asdict()) + "\n")


def load_galaxy_flow(path: str | Path | None = None) -> tuple[Any, FlowConfig]:
    """Read a flow written by `save_galaxy_flow` (default: the shipped one) with `sl.load`.

    **Returns:** `(flow, config)`.
    """
    if path is None:
        return _shipped()
    config = FlowConfig(**json.loads(Path(f"{path}.json").read_text()))
    return load(path, galaxy_flow(config)), config


@functools.cache
def _shipped() -> tuple[Any, FlowConfig]:
    """The shipped flow, read once per process (an immutable pytree: every prior may hold it)."""
    with resources.as_file(resources.files("scarlet_like") / "data" / SHIPPED) as shipped:
        return load_galaxy_flow(shipped)


def galaxy_flow_prior(
    shape: tuple[int, int], flow: Any = None, config: FlowConfig | None = None, *, strength: float = 1.0
) -> FlowPrior:
    """A [`scarlet_like.FlowPrior`][] on free-form galaxy images of `shape`: the shipped flow
    (or `flow`, of architecture `config`) seeing the image through [`scarlet_like.ImageInput`][].

    **Arguments:**

    - `shape`: `(h, w)` of the free-form image (any size: see `ImageInput` for how it is fitted).
    - `flow`, `config`: a trained flow and its configuration; default, the shipped ones.
    - `strength`: a factor on the flow's log density (see `FlowPrior`).
    """
    if flow is None:
        flow, config = load_galaxy_flow()
    config = FlowConfig() if config is None else config
    preprocess = ImageInput((config.side, config.side), config.softening)
    return FlowPrior(flow, tuple(shape), preprocess, strength=strength)
