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
# # Quickstart: a real blend, from pixels to posterior
#
# This tutorial takes a small piece of the sky observed by the Hyper Suprime-Cam (HSC) on the
# Subaru telescope and goes all the way to error bars on the properties of one galaxy in it. The
# cutout ships with scarlet_like: five bands (g, r, i, z, y), 58 × 48 pixels, a noise variance and a
# quality mask for every pixel, the point spread function (PSF) of each band, and seven detections
# whose light overlaps: one star and six galaxies.
#
# The steps are the ones you would follow on your own data:
#
# 1. wrap the images in an `sl.Observation`: data, weights, mask, PSF and band names;
# 2. build a *scene*, one source per detection, each a spectrum (flux per band) times a
#    morphology (a light profile);
# 3. fit it: find the most probable scene with `sl.fit`;
# 4. look at the residuals;
# 5. sample the posterior of one galaxy with NUTS (`sl.sample`) and read off its uncertainties.
#
# Everything here is kept short so that the notebook runs in about a minute on a laptop: few
# optimizer steps, two short chains. A real analysis runs the fit to convergence and samples longer;
# the text says where.

# %%
import warnings

# sl.fit shows a tqdm progress bar; without ipywidgets tqdm warns once and draws a text bar.
warnings.filterwarnings("ignore", message="IProgress not found")

import jax
import numpy as np

import scarlet_like as sl

print("scarlet_like", sl.__version__, "| jax", jax.__version__, "| device:", jax.devices()[0])

# %% [markdown]
# ## The data
#
# `sl.datasets.hsc_cosmos()` returns the cutout as plain NumPy arrays: `images` and `variance` of
# shape `(bands, height, width)`, a boolean `mask` (`True` where the HSC pipeline flagged a pixel),
# one PSF image per band, and the detections as `(y, x)` pixel positions.

# %%
data = sl.datasets.hsc_cosmos()
print("bands:", data.channels, "| images:", data.images.shape, "| PSFs:", data.psfs.shape)
print("detections (y, x):")
print(np.round(data.centers, 1))
print(data.attribution)

# %% [markdown]
# ## The observation
#
# An `sl.Observation` is everything needed to compare a model with the pixels, and it *is* the
# likelihood: a Gaussian with inverse-variance weights. Masked pixels get weight zero. The PSF
# images become an `sl.ArrayPSF`. `data.observation()` does exactly this:
#
# ```python
# sl.Observation(data.images, weights=1 / data.variance, mask=data.mask,
#                psf=sl.ArrayPSF(data.psfs), channels=data.channels)
# ```

# %%
observation = data.observation(name="HSC")
print("pixel values left out of the likelihood:", int(observation.mask.sum()))

# %% [markdown]
# ## The scene
#
# `sl.init.scene` builds a first guess from the detections: for each one it measures the size of
# the light distribution with the PSF taken out. Sources no wider than the PSF become point sources
# (`sl.PointSource`: the PSF times a spectrum); the others become elliptical Sérsic galaxies with a
# starting size, shape and flux read off the image. Every parameter comes with a constraint (a flux
# is positive, a Sérsic index lies between 0.5 and 6) and most with a weak prior, for example a
# one-pixel Normal prior on each centre around its detection.
#
# `sl.tree` prints the result as an outline. Here we show only its first lines: the star and the
# first galaxy.

# %%
scene = sl.init.scene(observation, data.centers)
print([type(source).__name__ for source in scene.sources])
print("\n".join(sl.tree(scene).splitlines()[:22]))

# %% [markdown]
# ## Fitting
#
# `sl.fit` finds the maximum of the posterior (likelihood times priors) with L-BFGS, on the
# unconstrained values behind the constraints, after rescaling each one by the curvature of the loss.
# The first stretch of the progress bar includes compiling the model: later fits of scenes built the
# same way reuse the compiled code.
#
# The fit stops by itself when it has converged (at most `max_steps`, 2000 by default). A parameter
# that runs into the edge of its allowed range early on (a Sérsic index at 6) cannot come back by
# itself, so a fit that converges with some there goes on once with them back at their starting
# values and keeps the better of the two optima; on this blend that takes a few hundred more steps.
# A fit that stops early, or still leaves a parameter on the edge of its range, says so with a
# `FitWarning`.

# %%
result = sl.fit(scene, observation)
fitted = result.model
print(
    f"chi^2 per pixel: {float(observation.goodness_of_fit(scene)):.1f} at the start, "
    f"{float(observation.goodness_of_fit(fitted)):.2f} after {int(result.steps)} steps"
)

# %% [markdown]
# The χ² per pixel is about one for a model that describes the data down to the noise. From several
# hundred at the start it drops below two: the scene accounts for nearly all the light. What is left
# shows in the residual panel of `sl.plot.scene`: the data and the model as colour composites of the
# five bands on the same scale, and the residual in units of the noise.

# %%
figure = sl.plot.scene(fitted, observation)

# %% [markdown]
# `sl.get_values` reads the fitted values by name. The names are paths into the scene, such as
# `sources[1].morphology.r_half` (the half-light radius of source 1 in pixels). Source 1 is
# the bright galaxy in the middle of the cutout; we look at it more closely below.

# %%
values = sl.get_values(fitted)
for name in (
    "sources[1].center",
    "sources[1].spectrum",
    "sources[1].morphology.n",
    "sources[1].morphology.r_half",
    "sources[1].morphology.ellipticity",
):
    print(f"{name:36} {np.round(np.asarray(values[name]), 3)}")

# %% [markdown]
# ## The posterior of one galaxy
#
# A fit gives one best scene; how well is each number measured? `sl.sample` answers with the
# No-U-Turn sampler (NUTS), which draws scenes from the posterior. Sampling every source costs a few
# minutes here (that is what `python -m scarlet_like demo` does). To stay quick we hold every
# source except galaxy 1 at its fitted values with `sl.fix` (which returns a new model; the fitted
# one is unchanged) and sample the 11 numbers of that galaxy: its position, its five fluxes and its
# shape.
#
# The chains start at the fit. Two chains of 150 warmup steps and 60 draws are enough to see the
# shape of the posterior (with 60 warmup steps the step size is not yet adapted, and a few
# trajectories diverge: 2-19 of 120 draws over four seeds; with 150, none where the fit put this
# galaxy's Sérsic index near 0.5, and 6 of 120 where an earlier fit had left it at 6, see below); for
# numbers you publish, run four chains of several hundred draws and check the diagnostics of the
# sampling tutorial (`06_sampling_diagnostics.py`).

# %%
others = [name for name in values if not name.startswith("sources[1].")]
one_galaxy = sl.fix(fitted, others)
print(len(sl.entry_names(one_galaxy)), "free entries")

with warnings.catch_warnings():
    # the fluxes have a positivity constraint but no prior: the data pin them down very well
    warnings.simplefilter("ignore", sl.ImproperPriorWarning)
    posterior = sl.sample(
        one_galaxy, observation, num_warmup=150, num_samples=60, num_chains=2, key=jax.random.key(0)
    )
print(posterior.summary())

# %% [markdown]
# The table lists, for each number, the posterior mean, its standard deviation and quantiles, and
# the diagnostics: the effective sample size (`ess_bulk`, `ess_tail`) and $\hat R$, which should be
# close to 1 when the chains agree. With such short chains some $\hat R$ values are above the usual
# 1.01: fine for a first look, not for a paper.
#
# The fluxes are measured to a few percent or better, the position to a small fraction of a
# pixel: the statistical errors of a well-detected galaxy are small. Real uncertainties are then dominated
# by the model itself (is a single Sérsic profile right for this galaxy?), which is what the residual
# image above is for.
#
# A corner plot shows the joint distribution of a few of the numbers, here the Sérsic index and the
# half-light radius, which trade off against each other. This galaxy is compact, and its Sérsic
# index sits near the low end of its allowed range (0.5 to 6): a Gaussian profile, half-light radius
# about 0.4 pixel. A fit of seven overlapping sources has several optima close together, and which
# one it reaches can depend on float rounding, which differs between CPUs; before `sl.fit` released
# parameters trapped at a bound, one CPU we tried ended with this index at 6, a worse optimum
# (χ² 1.68). Either way the posterior of `n` is squeezed against a bound, where the chains mix
# slowly (look at the effective sample sizes of the table).
# The data say little more than "compact"; a point source plus a faint extended component might
# describe it as well. Such a posterior is the place to look before trusting a number.

# %%
figure = sl.plot.corner(posterior, ["sources[1].morphology.n", "sources[1].morphology.r_half"])

# %% [markdown]
# ## Where to go next
#
# - Concepts (`02_concepts.py`): what a `Parameter` is, how constraints and priors work, and how to
#   write your own optimizer or sampler loop on the same log density.
# - Linking and hierarchy (`03_linking_hierarchy.py`): shared parameters, derived values, plates and
#   population models.
# - Two instruments (`04_two_instruments.py`): HSC and Hubble fitted together.
# - Sampling and diagnostics (`06_sampling_diagnostics.py`): how to trust (or not) a posterior.
#
# The last cell checks the headline numbers, so the notebook fails loudly if something breaks.

# %%
assert float(observation.goodness_of_fit(fitted)) < 2.5
# a few divergent draws are the short warmup's (see above); a broken sampler diverges in most
assert int(posterior.divergences.sum()) < 0.1 * posterior.divergences.size
assert posterior.values["sources[1].spectrum"].shape == (2, 60, 5)
print("checks passed")
