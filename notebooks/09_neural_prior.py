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
# # A learned prior on galaxy shapes
#
# Free-form sources give every galaxy a pixel image of its own; a prior says what such an image may
# look like. The hand-made `sl.FreeFormPrior` says "monotonic and symmetric". Here the prior is a
# *network*: a normalizing flow trained on galaxy images, used as the prior of each free-form image.
# This tutorial draws a training set with the package's own profiles, trains a (tiny) flow, saves and
# loads it, then uses the flow shipped with the package on a simulated blend, compares it with the
# hand-made prior, and samples a free-form source under it with NUTS.
#
# Network priors need the `neural` extra (`pip install "scarlet_like[neural]"`, for flowjax).

# %%
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from numpyro.diagnostics import effective_sample_size

import scarlet_like as sl

# %% [markdown]
# ## A training set, drawn here
#
# `sl.neural.galaxy_images` draws PSF-free, unit-flux galaxies: Sérsic profiles, bulges + disks and
# disks with star-forming knots, of random sizes, indices, ellipticities and orientations. Nothing is
# downloaded. The network sees them through `sl.ImageInput`: fitted to its input size (that of the
# shipped flow, read from its configuration), scaled to unit sum, in an asinh scale.

# %%
shipped, shipped_config = sl.neural.load_galaxy_flow()
side = shipped_config.side
print(shipped_config)
images = sl.neural.galaxy_images(jax.random.key(0), 250, side=side)
preprocess = sl.ImageInput((side, side), shipped_config.softening)
fig, axes = plt.subplots(2, 8, figsize=(12, 3.2))
for ax, image in zip(axes.ravel(), images, strict=False):
    ax.imshow(preprocess(image), cmap="magma")
    ax.axis("off")
fig.suptitle("training images, as the network sees them (asinh scale)")
plt.show()

# %% [markdown]
# ## Train, save, load
#
# `python -m scarlet_like train-prior` trains the full flow (a few CPU minutes); the shipped weights
# came from it. Here a tiny one trains for a few seconds, only to show the steps (it learns little in
# 50 steps). It is saved with `sl.save` (the weights) and a small JSON file (the architecture), and
# loaded back with `sl.load` into the same architecture.

# %%
config = sl.neural.FlowConfig(side=side, layers=2, width=32)
tiny, stats = sl.neural.train_galaxy_flow(jax.random.key(1), config, count=250, steps=50, batch=64)
print({name: round(value, 1) for name, value in stats.items()})
folder = Path(tempfile.mkdtemp())
sl.neural.save_galaxy_flow(folder / "tiny.eqx", tiny, config)
loaded, loaded_config = sl.neural.load_galaxy_flow(folder / "tiny.eqx")
galaxy = preprocess(images[0]).ravel()
print("same log density after loading:", bool(jnp.allclose(tiny.log_prob(galaxy), loaded.log_prob(galaxy))))

# %% [markdown]
# ## The shipped prior
#
# `sl.galaxy_flow_prior(shape)` is the shipped flow as an `sl.FlowPrior` on an image of `shape`. Its
# weights are data of the model: array leaves (saved with the model, never free parameters), so that a
# fit compiled for one set of weights runs with another without compiling again. It prefers a galaxy to
# the same galaxy with noise, or with a blob of a neighbour's light:

# %%
prior = sl.galaxy_flow_prior((side, side))
test = sl.neural.galaxy_images(jax.random.key(7), 250, side=side)
noisy = jnp.abs(test + 0.01 * jax.random.normal(jax.random.key(8), test.shape))
blob = test.at[:, 2:5, 10:13].add(0.02)
for label, batch in (("galaxies", test), ("with noise", noisy), ("with a blob", blob)):
    print(f"{label:12} median log prior {float(jnp.median(jax.vmap(prior.log_prob)(batch))):8.1f}")

# %% [markdown]
# ## A blend: the learned prior against the hand-made one
#
# Two overlapping galaxies in three bands. Parametric first, then free-form (11 x 11 images) with each
# prior, centres held where the parametric fit put them: the hand-made one (monotonic images, symmetry
# penalty), and the learned one (`sl.init.freeform_scene(..., prior=sl.galaxy_flow_prior)`, which adds
# the flow to the same penalty; `symmetry=0` would leave the flow alone). We compare each galaxy's
# recovered flux with the truth. (A short fit on a small example: `benchmarks/bench_deblend.py` measures
# the priors on simulated blends.)

# %%
bands = ("g", "r", "i")
psf = sl.GaussianPSF(np.array([1.2, 1.1, 1.0], np.float32))
empty = sl.Observation(np.zeros((3, 29, 29), np.float32), psf=psf, channels=bands)
frame = sl.Frame.from_observations(empty)
centers = np.array([[14.0, 11.0], [15.0, 17.5]])
with sl.Scene(frame) as truth:
    sl.Source(centers[0], np.array([300.0, 500.0, 700.0]), sl.SersicMorphology(1.0, 2.2, (0.2, 0.1)))
    sl.Source(centers[1], np.array([600.0, 450.0, 300.0]), sl.SersicMorphology(2.0, 1.8, (-0.1, 0.2)))
noiseless = np.asarray(empty.render(truth))
data = noiseless + np.random.default_rng(0).normal(0.0, 1.0, noiseless.shape)
obs = sl.Observation(data.astype(np.float32), weights=np.ones_like(data, np.float32), psf=psf, channels=bands)

parametric = sl.fit(sl.init.scene(obs, centers), obs, progress=False).model


def fluxes(scene):
    """Each source's flux per band: its image alone through the observation, summed."""
    return np.array([np.asarray(sl.measure.source_image(scene, k, obs)).sum(axis=(-2, -1)) for k in range(2)])


true_flux = fluxes(truth)
fitted = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", sl.FitWarning)
    for label, options in (("hand-made", {}), ("learned", {"prior": sl.galaxy_flow_prior})):
        free = sl.init.freeform_scene(parametric, obs, side=11, fix_center=True, **options)
        fitted[label] = sl.fit(free, obs, progress=False, max_steps=500).model
        flux = fluxes(fitted[label])
        print(f"{label:9} median flux error {np.median(np.abs(flux - true_flux) / true_flux):.3f}")

# %%
fig, axes = plt.subplots(2, 2, figsize=(6, 6))
for row, (label, model) in enumerate(fitted.items()):
    for k in range(2):
        axes[row, k].imshow(np.asarray(model.sources[k].morphology.image.value), cmap="magma")
        axes[row, k].set_title(f"{label}, galaxy {k}")
        axes[row, k].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Sampling a free-form source
#
# The flow's log density is known, so NUTS can sample a model under it. A short run on one isolated
# galaxy (a 7 x 7 image, its centre held), started at the fit, measuring the effective sample size per
# gradient evaluation (leapfrog step). The flow alone here (`symmetry=0`): the symmetry penalty is
# sharp at the scale of the noise, and NUTS takes much smaller steps under it
# (`benchmarks/bench_neural.py` runs a longer comparison).

# %%
with sl.Scene(frame) as single:
    sl.Source((14.0, 14.0), np.array([200.0, 300.0, 400.0]), sl.SersicMorphology(1.0, 1.5, (0.15, 0.1)))
clean = np.asarray(empty.render(single))
noisy = clean + np.random.default_rng(2).normal(0.0, 1.0, clean.shape)
one = sl.Observation(
    noisy.astype(np.float32), weights=np.ones_like(noisy, np.float32), psf=psf, channels=bands
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # an unbounded spectrum without a prior: NUTS warns, the data pin it
    free = sl.init.freeform_scene(
        single, one, side=7, fix_center=True, symmetry=0, prior=sl.galaxy_flow_prior
    )
    start = sl.fit(free, one, progress=False, max_steps=500)
    posterior = sl.sample(
        start.model,
        one,
        init=start,
        num_warmup=60,
        num_samples=60,
        num_chains=1,
        key=jax.random.key(3),
        progress=False,
    )
ess = np.asarray(effective_sample_size(np.asarray(posterior.samples)))
steps = int(np.sum(np.asarray(posterior.num_integration_steps)))
print(
    f"step size {float(posterior.step_size[0]):.3g}, {steps / 60:.0f} leapfrog steps per draw, "
    f"min ESS {ess.min():.0f}, median ESS {np.median(ess):.0f} of 60, "
    f"median ESS per gradient {np.median(ess) / steps:.4f}"
)
spread = np.std(np.asarray(posterior.values["sources[0].morphology.image"]), axis=(0, 1))
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(np.asarray(start.model.sources[0].morphology.image.value), cmap="magma")
axes[0].set_title("fitted image")
axes[1].imshow(spread, cmap="viridis")
axes[1].set_title("posterior sd per pixel")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## A score prior cannot be sampled
#
# `sl.ScorePrior` holds a score network (the gradient of a log density). Fits use its gradient, but
# its log density's value is unknown, and NUTS needs it for its energy: `sl.sample` says so.


# %%
class GaussianScore(sl.Module):
    def __call__(self, u):
        return -u


score = sl.ScorePrior(GaussianScore(), (2,))
toy = sl.Parameter(jnp.zeros(2), prior=score)
try:
    sl.sample([toy], lambda m: -jnp.sum((m[0] - 1.0) ** 2), key=jax.random.key(0), progress=False)
except ValueError as error:
    print(error)
