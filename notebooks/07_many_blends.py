# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Many blends: one compiled fit, several devices, many machines
#
# A survey does not have one blend, it has millions. Calling `sl.fit` on each would pay the Python
# overhead (and, for every new structure, the compilation) a million times. This tutorial fits a
# batch of blends with `sl.fit_many`: one compiled computation for all blends of one structure, with
# the batch spread over the available devices. Then it shows how the same code runs on many machines,
# with `jax.distributed` or with a task scheduler such as Dask.
#
# The blends are mock HSC blends: two galaxies each, drawn from priors, rendered through the real
# HSC PSFs of the bundled data set, with noise at the real noise level of its five bands. Mock data
# let us check every fit against its truth.

# %% [markdown]
# ## Several devices on one CPU
#
# `sl.fit_many` shards its batch over all local devices. A GPU or TPU machine has several; a CPU is
# one device unless JAX is told otherwise *before it starts*, with an XLA flag. Here we ask for two
# CPU devices, one per core of the small machine this notebook is tested on. (In a script, set
# `XLA_FLAGS=--xla_force_host_platform_device_count=8` in the shell before starting Python.)

# %%
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import time
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

import dask
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as nd

import scarlet_like as sl

print(jax.devices())

# %% [markdown]
# ## A survey of mock blends
#
# Every blend is built by the same function, so all have the same *structure* (classes, constraints,
# shapes of arrays); only the values differ. That is what lets `sl.fit_many` stack them and compile
# the fit once. Each galaxy is an exponential profile (a Sérsic profile with the index fixed at 1)
# whose position, five fluxes, size and ellipticity have priors: the priors generate the mock truths,
# and the same priors regularise the fits.

# %%
data = sl.datasets.hsc_cosmos()
SIZE = 32
noise = np.sqrt(np.median(data.variance, axis=(1, 2)))  # per band
template = sl.Observation(
    np.zeros((5, SIZE, SIZE)),
    weights=np.broadcast_to(1 / noise[:, None, None] ** 2, (5, SIZE, SIZE)),
    psf=sl.ArrayPSF(data.psfs),
    channels=data.channels,
)
frame = sl.Frame.from_observations(template)
typical_flux = jnp.array([30.0, 75.0, 130.0, 180.0, 240.0])  # about the bright galaxy of the blend


def blend():
    with sl.Scene(frame) as scene:
        for center in ([13.0, 14.0], [19.0, 18.0]):
            center = jnp.asarray(center)
            sl.Source(
                sl.Parameter(center, prior=nd.Normal(center, 1.0).to_event(1)),
                sl.Parameter(
                    typical_flux / 2,
                    constraint=sl.constraints.positive(),
                    prior=nd.LogNormal(jnp.log(typical_flux / 2), 0.7).to_event(1),
                ),
                sl.SersicMorphology(
                    1.0,
                    sl.Parameter(
                        2.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(jnp.log(2.0), 0.3)
                    ),
                    sl.Parameter(
                        jnp.zeros(2),
                        constraint=sl.constraints.unit_disk(),
                        prior=nd.Normal(jnp.zeros(2), 0.2).to_event(1),
                    ),
                ),
            )
    return scene


def mock(key):
    truth_key, noise_key = jax.random.split(key)
    truth = sl.sample_prior(blend(), truth_key)
    return truth, template.simulate(truth, noise_key)


N = 8
truths, images = jax.vmap(mock)(jax.random.split(jax.random.key(0), N))
print("images:", images.shape)

fig, axes = plt.subplots(1, N, figsize=(2 * N, 2.2))
for ax, image in zip(axes, np.asarray(images), strict=True):
    ax.imshow(np.arcsinh(image[2] / noise[2]), origin="lower", cmap="gray_r")
    ax.set_axis_off()
fig.suptitle("i band of the mock blends")
plt.show()

# %% [markdown]
# `sl.sample_prior` and `Observation.simulate` are pure JAX, so `jax.vmap` makes all the mock blends
# in one call; `truths` is one model holding all the true values.
#
# ## `sl.fit_many`
#
# One observation and one starting model per blend. The starting models all start at the prior's
# centre; the blends are stacked along a leading axis, sharded over the two devices, and each device
# fits its half, one blend after the other on a CPU (on a GPU, its blends at once). `batch_size=4`
# fits four blends per compiled call, here two calls; later calls with batches of four reuse the
# compiled fit. We cap the steps to keep the notebook quick; a real run leaves `max_steps` at its
# default.

# %%
observations = [
    sl.Observation(image, weights=template.weights, psf=template.psf, channels=data.channels)
    for image in np.asarray(images)
]
clock = time.perf_counter()
results = sl.fit_many([blend() for _ in observations], observations, max_steps=200, batch_size=4)
print(f"{len(results)} blends in {time.perf_counter() - clock:.1f} s, compilation included")
chi2 = [float(o.goodness_of_fit(r.model)) for o, r in zip(observations, results, strict=True)]
print("chi^2 per pixel:", np.round(chi2, 2))

# %% [markdown]
# The results come back in order, one `FitResult` per blend, exactly as `sl.fit` would have given
# them. With mock data we can compare each fitted flux with its truth:

# %%
true_flux = np.asarray(sl.get_values(truths)["sources[0].spectrum"])[:, 2]
fitted_flux = np.array([float(sl.get_values(r.model)["sources[0].spectrum"][2]) for r in results])
fig, ax = plt.subplots(figsize=(4, 4))
ax.loglog(true_flux, fitted_flux, "o")
ax.plot([true_flux.min(), true_flux.max()], [true_flux.min(), true_flux.max()], "k--", lw=1)
ax.set_xlabel("true i-band flux, galaxy 0")
ax.set_ylabel("fitted")
plt.show()

# %% [markdown]
# A second call with blends of the same structure and shapes reuses the compiled fit, so a survey
# is fitted batch after batch at the cost of the steps alone. `batch_size=` bounds how many blends
# are fitted per compiled call (memory), and `unstack_results=False` leaves the results stacked and
# sharded on the devices, for further JAX processing without a round trip through Python.
#
# ## Many machines
#
# Blends are independent, so spreading a survey over machines needs no communication between them:
# each machine fits its own share. Two routes:
#
# **`jax.distributed`**, on a cluster with a scheduler (Slurm, MPI): start one process per host,
# call `jax.distributed.initialize()` first, and let each process take its share,
#
# ```python
# jax.distributed.initialize()
# mine = slice(jax.process_index(), None, jax.process_count())
# results = sl.fit_many(models[mine], observations[mine])
# ```
#
# **A task scheduler** such as Dask sends tasks to workers wherever they run. A task receives plain
# arrays (the images of its share of the survey) and returns plain arrays (the measurements), so that
# nothing but data travels. Below, two such tasks run on Dask's synchronous scheduler, one after the
# other in this process; with a `dask.distributed.Client` connected to a cluster, the same
# `dask.compute` call runs them on the cluster's workers, each of which fits its share on its own
# devices.


# %%
def fit_share(images):
    """Fit a share of the survey; plain arrays in, plain arrays out."""
    observations = [
        sl.Observation(image, weights=template.weights, psf=template.psf, channels=data.channels)
        for image in images
    ]
    results = sl.fit_many([blend() for _ in observations], observations, max_steps=200, batch_size=4)
    return np.stack([np.asarray(sl.get_values(r.model)["sources[0].spectrum"]) for r in results])


shares = [dask.delayed(fit_share)(np.asarray(images)[i::2]) for i in range(2)]
measured = dask.compute(*shares, scheduler="synchronous")
print([share.shape for share in measured])

# %% [markdown]
# Each share is a batch of four blends, so it reused the fit compiled above, and its fluxes agree
# with those of the single call.
#
# ## Checks

# %%
assert len(jax.devices()) == 2
assert all(bool(r.converged) or c < 1.5 for r, c in zip(results, chi2, strict=True))
assert np.median(np.abs(fitted_flux / true_flux - 1)) < 0.2
np.testing.assert_allclose(measured[0][:, 2], fitted_flux[0::2], rtol=1e-3)
print("checks passed")
