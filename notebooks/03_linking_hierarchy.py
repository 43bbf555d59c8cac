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
# # Linking and hierarchy: one supernova in five images, and a population of supernovae
#
# Physics ties the parts of a model together. A galaxy does not change between two exposures; a
# supernova stays where it exploded while its brightness follows a light curve; a sample of
# supernovae shares the statistics of its population. Writing these links into the model removes
# unknowns and lets every image inform every other.
#
# scarlet_like expresses links with three tools:
#
# 1. **sharing**: put the *same* `Parameter` object (or the same module) in several places, and it
#    is one unknown;
# 2. **derived values**: `sl.Derived(fn, *inputs)` is a value computed from other parts of the
#    model, with no unknown of its own;
# 3. **hierarchical priors and plates**: `sl.HierarchicalPrior` makes a prior depend on other
#    parameters, and `sl.stack` keeps many like sub-models as one stacked, vectorised *plate*.
#
# `sl.tree` and `sl.graph` show how a model is wired. The images here are simulated (with a fixed
# random seed), so that the answers can be checked against the truth.

# %%
import shutil
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as nd
from IPython.display import display

import scarlet_like as sl

# %% [markdown]
# ## A supernova in its host galaxy
#
# Five 50 × 50 pixel images, a few days apart. Each holds the host galaxy, a smooth Gaussian blob,
# and the supernova, a point source blurred by a Gaussian PSF. Modelled image by image this would be
# a galaxy (centre, size, flux) and a point source (centre, flux) per epoch: 35 unknowns. The physics
# says one galaxy, one supernova position, and one light curve, a Gaussian pulse with a peak time
# `t0`, a `width` and a `peak` flux: **9** unknowns.
#
# The building blocks are ordinary `sl.Module`s. As always, their methods see `self` resolved, so
# `PointSource.__call__` multiplies by `self.flux` without knowing that the flux is computed from a
# light curve.

# %%
TIMES = jnp.array([-6.0, -3.0, 0.0, 3.0, 6.0])  # days
SIZE = 50  # pixels per side
PSF_SIGMA = 1.5  # pixels


def gaussian_image(grid, center, sigma, flux):
    squared = jnp.sum((grid - center[:, None, None]) ** 2, axis=0)
    return flux * jnp.exp(-0.5 * squared / sigma**2) / (2 * jnp.pi * sigma**2)


class LightCurve(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter

    def __call__(self, t):
        return self.peak * jnp.exp(-0.5 * ((t - self.t0) / self.width) ** 2)


class Galaxy(sl.Module):
    center: sl.Parameter
    sigma: sl.Parameter
    flux: sl.Parameter

    def __call__(self, grid):
        return gaussian_image(grid, self.center, self.sigma, self.flux)


class PointSource(sl.Module):
    center: sl.Parameter
    flux: sl.Derived  # any field may hold a derived value

    def __call__(self, grid):
        return gaussian_image(grid, self.center, PSF_SIGMA, self.flux)


class Epoch(sl.Module):
    galaxy: Galaxy
    supernova: PointSource

    def __call__(self, grid):
        return self.galaxy(grid) + self.supernova(grid)


class Survey(sl.Module):
    light_curve: LightCurve
    epochs: list

    def __call__(self, grid):
        return jnp.stack([epoch(grid) for epoch in self.epochs])


rows, cols = jnp.meshgrid(jnp.arange(SIZE, dtype=float), jnp.arange(SIZE, dtype=float), indexing="ij")
grid = jnp.stack([rows, cols])  # (2, SIZE, SIZE): the (row, column) of every pixel

# %% [markdown]
# ## Wiring the links
#
# `build` creates each piece **once** and places it wherever it is used:
#
# - `galaxy` is one object, put into all five epochs: 4 unknowns, not 20;
# - `position` is one `Parameter`, the centre of all five point sources;
# - each epoch's supernova flux is `sl.Derived(flux_at, curve, time)`, recomputed from the light
#   curve whenever the model is resolved.
#
# `flux_at` is defined once, at module level, and the time is passed as an input rather than baked
# into a fresh `lambda` per epoch: the function is part of the model's structure, so reusing it keeps
# models built by `build` identical in structure (they then share compiled code).
#
# Two parameters that merely start at the same number are *not* linked: only the same object is.


# %%
def flux_at(curve, time):
    return curve(time)


def build(galaxy_center, galaxy_sigma, galaxy_flux, sn_center, t0, width, peak):
    curve = LightCurve(
        t0=sl.Parameter(t0, prior=nd.Normal(0.0, 10.0)),
        width=sl.Parameter(width, constraint=sl.constraints.positive()),
        peak=sl.Parameter(peak, constraint=sl.constraints.positive()),
    )
    galaxy = Galaxy(
        center=sl.Parameter(jnp.asarray(galaxy_center)),
        sigma=sl.Parameter(galaxy_sigma, constraint=sl.constraints.positive()),
        flux=sl.Parameter(galaxy_flux, constraint=sl.constraints.positive()),
    )
    position = sl.Parameter(jnp.asarray(sn_center))
    epochs = [
        Epoch(galaxy=galaxy, supernova=PointSource(center=position, flux=sl.Derived(flux_at, curve, time)))
        for time in TIMES
    ]
    return Survey(light_curve=curve, epochs=epochs)


truth = dict(t0=-1.0, width=3.0, peak=60.0)
true_survey = build([25.0, 25.0], 4.0, 300.0, [28.0, 21.5], **truth)
noise = 0.05
data = true_survey(grid) + noise * jax.random.normal(jax.random.key(11), (len(TIMES), SIZE, SIZE))

fig, axes = plt.subplots(1, 5, figsize=(14, 3))
for ax, image, t in zip(axes, data, TIMES, strict=True):
    ax.imshow(np.asarray(image), origin="lower", vmin=0, vmax=float(data.max()))
    ax.set_title(f"t = {float(t):+g} d")
    ax.set_axis_off()

# %% [markdown]
# ## Looking at the model
#
# We start from a guess that is a little off everywhere. `sl.tree` prints the model as an outline.
# A shared parameter is described at its first spot and marked `[shared ×n]`; its other spots point
# back to it with `->`. The light curve reads `[shared ×6]`: its own field, and an input of each of
# the five derived fluxes.

# %%
start = build([25.4, 24.6], 3.5, 250.0, [28.4, 21.0], t0=-2.0, width=2.5, peak=40.0)
print("\n".join(sl.tree(start).splitlines()[:24]))

# %% [markdown]
# `sl.graph` draws the same structure as a directed graph, values flowing from parameters (ellipses)
# into derived values (hexagons) and modules (boxes). Drawing needs Graphviz's `dot` program; without
# it we print the start of the DOT text.

# %%
drawing = sl.graph(start, name="survey")
if shutil.which("dot"):
    display(drawing)
else:
    print("\n".join(drawing.source.splitlines()[:15]))

# %% [markdown]
# ## Nine unknowns, fitted
#
# The flat vector of the model has one named entry per unknown. Names are the path of a parameter's
# *first* spot, so the galaxy and the supernova position are named after epoch 0.
#
# The likelihood is Gaussian with the known noise; `sl.fit` takes it as a function of the resolved
# model. `sl.laplace` then approximates the posterior by a Gaussian at the optimum (the curvature of
# the log density there) and gives standard deviations by name.


# %%
def log_likelihood(survey):
    return -0.5 * jnp.sum(((survey(grid) - data) / noise) ** 2)


print(sl.entry_names(start))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", sl.ImproperPriorWarning)
    laplace = sl.laplace(start, log_likelihood)  # fits first, then takes the curvature
values = sl.get_values(laplace.mode)
for name, true_value in truth.items():
    key = f"light_curve.{name}"
    print(f"{name:>5}: {float(values[key]):7.3f} ± {float(laplace.std[key]):.3f}   truth {true_value}")

# %% [markdown]
# Every epoch uses the same galaxy and supernova position after the fit, as before it: resolving the
# model fills every spot of a shared parameter from its one value. And the fluxes of the five epochs
# are read off the resolved model like any other value.

# %%
resolved = sl.resolve(laplace.mode)
for epoch in resolved.epochs[1:]:
    np.testing.assert_array_equal(epoch.supernova.center, resolved.epochs[0].supernova.center)
epoch_fluxes = np.array([float(epoch.supernova.flux) for epoch in resolved.epochs])
print("supernova flux per epoch:", np.round(epoch_fluxes, 2))

fine = jnp.linspace(-12.0, 12.0, 200)
draws = sl.get_values(laplace.sample(jax.random.key(3), 200))  # one model holding 200 draws
t0s, widths, peaks = (draws[f"light_curve.{name}"] for name in ("t0", "width", "peak"))
curves = jax.vmap(lambda t0, width, peak: LightCurve(t0, width, peak)(fine))(t0s, widths, peaks)
low, high = np.quantile(np.asarray(curves), [0.05, 0.95], axis=0)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(fine, true_survey.light_curve(fine), "k--", label="truth")
ax.fill_between(fine, low, high, color="C3", alpha=0.4, label="90% band (Laplace)")
ax.plot(TIMES, epoch_fluxes, "o", color="C0", label="derived flux per epoch")
ax.set_xlabel("time [days]")
ax.set_ylabel("supernova flux")
ax.legend()
plt.show()

# %% [markdown]
# ## A population: plates and hierarchical priors
#
# Now many supernovae. Suppose a survey measured twelve light curves (fluxes only, no images) and we
# want the *distribution* of their durations: the mean width `mu` and the spread `tau` of the
# population. Each supernova's width gets a prior that depends on those two parameters,
# `sl.HierarchicalPrior(nd.Normal, mu, tau)`, so the population is learnt from all curves at once,
# and each curve's width is pulled towards the population where its own data are weak.
#
# The twelve light curves are built by one function and stacked with `sl.stack` into a **plate**:
# one `LightCurve` whose arrays have a leading axis of length 12. Calling the plate evaluates every
# member with `jax.vmap`, so the compiled program stays the same size for 12 or 12 000 members.
# `mu` and `tau` are the same objects in every member's prior, so they stay single, shared
# parameters.

# %%
N_SN = 12
epochs = jnp.linspace(-12.0, 12.0, 9)
mu = sl.Parameter(4.0, prior=nd.Normal(4.0, 3.0))
tau = sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.HalfNormal(2.0))


def member(t0, peak):
    return LightCurve(
        t0=sl.Parameter(t0, prior=nd.Normal(0.0, 10.0)),
        width=sl.Parameter(
            4.0, constraint=sl.constraints.positive(), prior=sl.HierarchicalPrior(nd.Normal, mu, tau)
        ),
        peak=sl.Parameter(peak, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.0, 2.0)),
    )


class Population(sl.Module):
    mu: sl.Parameter
    tau: sl.Parameter
    curves: sl.Plate

    def __call__(self, t):
        return self.curves(t)  # (N_SN, len(t))


population = Population(mu=mu, tau=tau, curves=sl.stack([member(0.0, 1.0) for _ in range(N_SN)]))
print(sl.tree(population))

# %% [markdown]
# The true population has mean width 5 days and spread 1 day; each supernova is measured at nine
# epochs with a flux error of 0.1 (peak fluxes between 1 and 3).

# %%
key_t0, key_width, key_peak, key_noise = jax.random.split(jax.random.key(7), 4)
true_t0 = jax.random.uniform(key_t0, (N_SN,), minval=-4.0, maxval=4.0)
true_width = 5.0 + 1.0 * jax.random.normal(key_width, (N_SN,))
true_peak = jax.random.uniform(key_peak, (N_SN,), minval=1.0, maxval=3.0)
true_curves = true_peak[:, None] * jnp.exp(-0.5 * ((epochs - true_t0[:, None]) / true_width[:, None]) ** 2)
fluxes = true_curves + 0.1 * jax.random.normal(key_noise, true_curves.shape)


def population_likelihood(model):
    return jnp.sum(nd.Normal(model(epochs), 0.1).log_prob(fluxes))


print(len(sl.entry_names(population)), "unknowns:", sl.entry_names(population)[:5], "...")

# %% [markdown]
# The graph shows the plate as a cluster holding the member structure once, with `mu` and `tau`
# outside it and a dashed `prior` edge into the widths they shape.

# %%
drawing = sl.graph(population, name="population")
if shutil.which("dot"):
    display(drawing)
else:
    print("\n".join(drawing.source.splitlines()[:15]))

# %% [markdown]
# A maximum of the posterior is a poor summary of a population spread (the most probable `tau` of a
# hierarchical model is often zero), so we sample. Two chains of 200 warmup steps and 200 draws take
# a few seconds here; use four chains and more draws for a real result.

# %%
posterior = sl.sample(
    population,
    population_likelihood,
    num_warmup=200,
    num_samples=200,
    num_chains=2,
    key=jax.random.key(0),
    progress=False,
)
table = posterior.summary(as_dict=True)
for name in ("mu", "tau"):
    row = table[name]
    print(f"{name:>4}: {row['mean']:.2f} ± {row['sd']:.2f}  (r_hat {row['r_hat']:.3f})")
print("true widths: mean", round(float(true_width.mean()), 2), "spread", round(float(true_width.std()), 2))
print("divergences:", int(posterior.divergences.sum()))

# %% [markdown]
# ## Checks

# %%
assert len(sl.entry_names(start)) == 9
for name, true_value in truth.items():
    key = f"light_curve.{name}"
    assert abs(float(values[key]) - true_value) < 4 * float(laplace.std[key]), name
assert abs(table["mu"]["mean"] - float(true_width.mean())) < 3 * table["mu"]["sd"]
print("checks passed")
