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
# # Sampling and diagnostics: when can you trust a posterior?
#
# A sampler always returns numbers. Whether they describe the posterior is a separate question, and
# the answer comes from diagnostics: several chains that agree ($\hat R$), enough independent draws
# (the effective sample size, ESS), no divergent trajectories, and a model that reproduces the data.
# This tutorial runs `sl.sample` (NUTS) on a real source, reads its diagnostics as tables and plots,
# hands the result to ArviZ, compares it with the much cheaper Laplace approximation, and then shows
# what a posterior that NUTS *cannot* explore looks like, and how to fix it.
#
# The runs are short so that the notebook takes about a minute; the text says what a real analysis
# would use.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

import arviz as az
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as nd

import scarlet_like as sl

# %% [markdown]
# ## A star in the HSC blend
#
# We cut a 15 × 15 pixel stamp around the star of the bundled HSC blend (detection 0) and model it
# as a point source: a position and five fluxes. A small model on a small stamp samples in seconds,
# and a star is the textbook case of a well-measured source, so every diagnostic should be clean.
# The edges of the stamp catch a little light of the neighbouring galaxies; the residuals will show
# how much.

# %%
data = sl.datasets.hsc_cosmos()
rows, cols = slice(26, 41), slice(7, 22)
stamp = sl.Observation(
    data.images[:, rows, cols],
    weights=1 / data.variance[:, rows, cols],
    mask=data.mask[:, rows, cols],
    psf=sl.ArrayPSF(data.psfs),
    channels=data.channels,
    name="HSC star",
)
center = data.centers[0] - np.array([rows.start, cols.start])
with sl.Scene(sl.Frame.from_observations(stamp)) as star:
    sl.PointSource(
        sl.Parameter(center, prior=nd.Normal(jnp.asarray(center), 1.0).to_event(1)),
        sl.Parameter(
            sl.init.pixel_spectrum(stamp, center),
            constraint=sl.constraints.positive(),
            prior=nd.HalfNormal(jnp.full(5, 1e4)).to_event(1),  # weak: fluxes below ~10^4
        ),
    )
fitted = sl.fit(star, stamp, progress=False).model
print(f"chi^2 per pixel of the fit: {float(stamp.goodness_of_fit(fitted)):.2f}")

# %% [markdown]
# The χ² per pixel is far above one. A star this bright shows the small differences between the PSF
# images and the real PSF, and the stamp's edges catch light of the neighbours. Keep this in mind: it
# matters for what the posterior below means.
#
# ## Sampling
#
# Four chains start near the fit. Each first *warms up*: it adapts its step size and a mass matrix
# (the scale of each parameter) and those draws are thrown away. Then it draws. We use 200 warmup
# steps and 200 draws per chain; for results you publish, use at least 500 and 1000, and more if the
# ESS below comes out small.

# %%
posterior = sl.sample(fitted, stamp, num_warmup=200, num_samples=200, num_chains=4, key=jax.random.key(0))
print(posterior.summary())

# %% [markdown]
# How to read the table:
#
# - **mean, sd and quantiles** summarise the posterior of each number.
# - **mcse** is the Monte-Carlo error of the mean: how far the mean could move if you sampled again.
#   It should be small compared with `sd`.
# - **ess_bulk, ess_tail**: how many *independent* draws the correlated chains are worth, for the
#   centre and for the tails of the distribution. Aim for more than about 100 per chain for every
#   number you report.
# - **r_hat** compares the chains with each other and with their own halves. Values above 1.01 say
#   the chains have not yet agreed on one distribution.
# - the last line counts **divergences** (should be 0) and gives the E-BFMI (below about 0.3 is a
#   sign the sampler struggles to move between energy levels).
#
# The same numbers are available programmatically:

# %%
table = posterior.summary(as_dict=True)
ess = min(row["ess_bulk"] for row in table.values())
r_hat = max(row["r_hat"] for row in table.values())
print(
    f"smallest bulk ESS {ess:.0f}, largest R-hat {r_hat:.3f}, divergences {int(posterior.divergences.sum())}"
)
print("E-BFMI per chain:", np.round(np.asarray(posterior.bfmi()), 2))

# %% [markdown]
# ## Looking at the chains
#
# `sl.plot.trace` shows each chain's draws in order (left) and their histograms (right): good chains
# look like overlapping, featureless noise. `sl.plot.rank` is a sharper test: it ranks all draws
# together and histograms each chain's ranks, which are flat when the chains sample the same
# distribution.

# %%
figure = sl.plot.trace(posterior, ["sources[0].center", "sources[0].spectrum"])

# %%
figure = sl.plot.rank(posterior, "sources[0].center")

# %% [markdown]
# A corner plot shows every pair of numbers, here the two coordinates of the position. Formally the
# position is known to under a thousandth of a pixel. But the errors of a posterior are only as good
# as the model: with χ² per pixel near 8, the model does not describe the data down to the noise, and
# these statistical errors are too small. The next plot shows where the model falls short.

# %%
figure = sl.plot.corner(posterior, ["sources[0].center"])

# %% [markdown]
# Diagnostics say the sampler did its job, not that the model is right. `sl.plot.predictive` renders
# the model at many posterior draws and compares it with the data, band by band: the residual of the
# mean model, and the spread of the model across draws.

# %%
figure = sl.plot.predictive(posterior, stamp, draws=50)

# %% [markdown]
# ## ArviZ
#
# `posterior.to_arviz()` returns an `arviz.InferenceData` with the constrained draws and the sampler
# statistics, so ArviZ's tables and plots work as for PyMC or numpyro results. The energy plot
# compares the distribution of the energy with that of its changes between draws; when the second is
# much narrower than the first, the sampler explores slowly (the E-BFMI above measures the same).

# %%
idata = posterior.to_arviz()
print(az.summary(idata, var_names=["sources[0].center"], kind="diagnostics"))
axes = az.plot_energy(idata)

# %% [markdown]
# ## Laplace or NUTS?
#
# `sl.laplace` replaces sampling by a Gaussian at the best fit, whose width comes from the curvature
# of the log density there. It costs one Hessian instead of thousands of gradient evaluations. For a
# well-measured source with a near-Gaussian posterior the two agree:

# %%
laplace = sl.laplace(fitted, stamp, fit=False)
print(f"{'':24}{'Laplace sd':>12}{'NUTS sd':>12}")
for name in ("sources[0].center", "sources[0].spectrum"):
    for index, (a, b) in enumerate(
        zip(np.ravel(laplace.std[name]), np.ravel(posterior.values[name].std(axis=(0, 1))), strict=True)
    ):
        print(f"{name + f'[{index}]':24}{a:12.4g}{b:12.4g}")

# %% [markdown]
# Use the Laplace approximation for bright, well-resolved sources far from the bounds of their
# constraints; sample when a source is faint, near a bound (a size close to zero, an ellipticity near
# the edge of the disk), or when the posterior is skewed or has several modes.
#
# ## What divergences look like
#
# Some posteriors have a geometry NUTS cannot follow. The classic case is a hierarchical model whose
# population spread can be small: the *eight schools* (Rubin 1981), the measured effects of a
# coaching programme on test scores in eight schools, with their standard errors. Each school's
# effect `theta` is drawn from a population Normal(`mu`, `tau`). Where `tau` is small the `theta`s
# must all be close to `mu`: the posterior narrows into a funnel whose neck is too thin for the step
# size that suits its mouth. Trajectories that enter the neck blow up: those are *divergences*, and
# the draws around them are biased.

# %%
EFFECTS = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
ERRORS = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


class Schools(sl.Module):
    mu: sl.Parameter
    tau: sl.Parameter
    theta: sl.Parameter | sl.Derived


def schools_likelihood(schools):
    return jnp.sum(nd.Normal(schools.theta, ERRORS).log_prob(EFFECTS))


def population():
    mu = sl.Parameter(0.0, prior=nd.Normal(0.0, 5.0))
    tau = sl.Parameter(3.0, constraint=sl.constraints.positive(), prior=nd.HalfCauchy(5.0))
    return mu, tau


mu, tau = population()
centred = Schools(
    mu=mu, tau=tau, theta=sl.Parameter(jnp.zeros(8), prior=sl.HierarchicalPrior(nd.Normal, mu, tau))
)
funnel = sl.sample(
    centred,
    schools_likelihood,
    num_warmup=300,
    num_samples=300,
    num_chains=2,
    key=jax.random.key(1),
    progress=False,
)
print(funnel.summary().splitlines()[-1])

# %% [markdown]
# The **non-centred** form writes each effect as `mu + tau * z` with a standard normal `z`, as an
# `sl.Derived` value. It is the same model, but the sampler now moves in `z`, where the funnel is gone.


# %%
def shift_and_scale(mu, tau, z):
    return mu + tau * z


mu, tau = population()
z = sl.Parameter(jnp.zeros(8), prior=nd.Normal(0.0, 1.0), name="z")
non_centred = Schools(mu=mu, tau=tau, theta=sl.Derived(shift_and_scale, mu, tau, z))
smooth = sl.sample(
    non_centred,
    schools_likelihood,
    num_warmup=300,
    num_samples=300,
    num_chains=2,
    key=jax.random.key(1),
    progress=False,
)
print(smooth.summary().splitlines()[-1])

# %% [markdown]
# Plotting `log tau` against one school's effect shows the funnel, and where the divergences
# (red) of the centred run sit: at its neck, where the centred sampler cannot go. The non-centred
# run reaches much smaller values of `tau`.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, run, title in ((axes[0], funnel, "centred"), (axes[1], smooth, "non-centred")):
    resolved = run.map(sl.resolve)
    log_tau = np.log(np.asarray(resolved.tau)).ravel()
    theta0 = np.asarray(resolved.theta[..., 0]).ravel()
    divergent = np.asarray(run.divergences).ravel()
    ax.scatter(theta0[~divergent], log_tau[~divergent], s=6, alpha=0.5, label="draws")
    ax.scatter(theta0[divergent], log_tau[divergent], s=14, color="red", label="divergent")
    ax.set_title(f"{title}: {int(divergent.sum())} divergences")
    ax.set_xlabel("theta[0]")
axes[0].set_ylabel("log tau")
axes[0].legend()
plt.show()

# %% [markdown]
# What to do about divergences, in order: raise `target_acceptance` (0.9, 0.95: smaller steps) if
# there are only a few; reparametrise (as above) if they cluster in one region; and never ignore
# them. In a scene, they usually come from a parameter pushed against the bound of its constraint,
# such as the size of a galaxy that wants to be a point source.
#
# ## Checks

# %%
assert int(posterior.divergences.sum()) == 0
assert r_hat < 1.1
for a, b in zip(
    np.ravel(laplace.std["sources[0].center"]),
    np.ravel(posterior.values["sources[0].center"].std(axis=(0, 1))),
    strict=True,
):
    assert abs(a / b - 1) < 0.3
print("checks passed")
