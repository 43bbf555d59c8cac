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
# # Concepts: parameters, constraints, priors and the log density
#
# `sl.fit` and `sl.sample` are conveniences. Underneath, every scarlet_like model, a scene of
# galaxies or the one-line model below, becomes the same object: a log posterior density, a plain
# JAX function of one flat vector of unconstrained numbers. This tutorial builds that object by hand
# on a small model so that you can see each piece, and then runs your own optimizer loop (optax) and
# your own sampler loop (blackjax) on it. That is the route to take when you want an optimizer,
# sampler or inference method the framework does not offer.
#
# The model is a transient's light curve: a Gaussian pulse in time, seen as a noisy series of flux
# measurements. Nothing in this tutorial is specific to astronomy.

# %%
import pathlib
import tempfile
import warnings

# scarlet_like's progress bars use tqdm; without ipywidgets tqdm warns once and draws text bars.
warnings.filterwarnings("ignore", message="IProgress not found")

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpyro.distributions as nd
import optax

import scarlet_like as sl

# %% [markdown]
# ## A model and its parameters
#
# A model is a subclass of `sl.Module` (itself an `equinox.Module`, an immutable pytree). Its
# fields hold `sl.Parameter`s. Inside `__call__`, and any other public method, `self` is already
# *resolved*: every field holds the plain value of its parameter, so the physics is ordinary JAX.


# %%
class LightCurve(sl.Module):
    t0: sl.Parameter  # time of the peak, in days
    width: sl.Parameter  # duration of the pulse (its standard deviation), > 0
    peak: sl.Parameter  # flux at the peak, between 0 and 1

    def __call__(self, t):
        return self.peak * jnp.exp(-0.5 * ((t - self.t0) / self.width) ** 2)


# %% [markdown]
# We make a data set from a known "true" curve, so that we can check the answers. A parameter
# without prior or constraint is just a number, and a model can be called like a function.

# %%
truth = LightCurve(t0=sl.Parameter(1.2), width=sl.Parameter(2.0), peak=sl.Parameter(0.6))
times = jnp.linspace(-10.0, 10.0, 101)
sigma = 0.03
data = truth(times) + sigma * jax.random.normal(jax.random.key(42), times.shape)
true_values = sl.get_values(truth)
true_values

# %% [markdown]
# ## Constraints and priors
#
# The model we fit starts away from the truth, and now its parameters say what they may be:
#
# - a **constraint** is the set of allowed values: `positive()` for the width, `interval(0, 1)` for
#   the peak. It is a bijection from all real numbers onto that set (an exponential, a scaled
#   sigmoid), so optimizers and samplers move freely in unconstrained space and the model never sees
#   an invalid value;
# - a **prior** is a numpyro distribution of the constrained value: here a broad Normal on `t0`.
#   Parameters without a prior have a flat one.

# %%
curve = LightCurve(
    t0=sl.Parameter(-2.0, prior=nd.Normal(0.0, 5.0)),
    width=sl.Parameter(4.0, constraint=sl.constraints.positive()),
    peak=sl.Parameter(0.3, constraint=sl.constraints.interval(0.0, 1.0)),
)
print(sl.tree(curve))

# %% [markdown]
# ## Partition, combine and ravel
#
# Because models are immutable pytrees, working with their numbers is a matter of splitting them
# off and putting them back:
#
# - `sl.partition(model)` gives `free`, a dictionary from each free parameter's name to its
#   *unconstrained* value, and `rest`, everything else; `sl.combine(free, rest)` is the exact
#   inverse. `free` is a pytree, so optax can work on it directly;
# - `sl.ravel(model)` goes one step further and concatenates the free values into one vector `x`,
#   with the function that turns any such vector back into a model.

# %%
free, rest = sl.partition(curve)
print("free:", free)  # t0 as is, log(width), logit(peak)
print("combine(partition(m)) == m:", bool(eqx.tree_equal(sl.combine(free, rest), curve)))

x, unravel = sl.ravel(curve)
print("x:", x)
print("back to a model:", sl.get_values(unravel(x + 0.1)))

# %% [markdown]
# ## The log density
#
# The likelihood is any function of the resolved model that returns a log probability. For
# independent Gaussian errors:


# %%
def log_likelihood(model):
    return -0.5 * jnp.sum(((model(times) - data) / sigma) ** 2)


# %% [markdown]
# `sl.LogDensity(model, likelihood)` adds the log priors and, by default, the log-determinant of the
# Jacobian of the constraints. It is a function of the flat vector `x`, and carries `x0` (the
# model's current values), `names` (one per entry of `x`) and `model(x)` (the way back).
#
# The Jacobian term is what makes draws in unconstrained space, mapped through the constraints,
# draws of the posterior of the parameters you wrote down: keep it for sampling. For a fit (the most
# probable *constrained* values) leave it out with `jacobian=False`; it would move the optimum.
# `terms(x)` lists each contribution separately.

# %%
density = sl.LogDensity(curve, log_likelihood, jacobian=False)
print("names:", density.names)
print("x0:   ", density.x0)
print("log density at x0:", float(density(density.x0)))
density.terms(density.x0)

# %% [markdown]
# ## Your own optax loop
#
# From here on it is plain JAX. Adam minimises, so we give it the gradient of the *negative* log
# density. `jax.lax.scan` runs all the steps inside one compiled function; passing the density as an
# argument to `equinox.filter_jit` makes its structure part of the compilation key and its arrays
# ordinary inputs.

# %%
optimizer = optax.adam(learning_rate=0.05)


@eqx.filter_jit
def run_adam(density, steps=600):
    def step(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(density)(x)
        updates, state = optimizer.update(-grad, state, x)
        return (optax.apply_updates(x, updates), state), value

    x0 = density.x0
    (x, _), trace = jax.lax.scan(step, (x0, optimizer.init(x0)), length=steps)
    return x, trace


x_fit, trace = run_adam(density)
fitted = density.model(x_fit)
fitted_values = sl.get_values(fitted)
for name in density.names:
    print(f"{name:>6}: fitted {float(fitted_values[name]):7.4f}   truth {float(true_values[name]):7.4f}")

# %% [markdown]
# ## Fixing a parameter
#
# Suppose the width were known from elsewhere. `sl.set_values` sets it (by name, in constrained
# units) and `sl.fix` makes it a constant. Both return new models; `curve` is untouched. The flat
# vector of the new model has one entry fewer, and the same loop fits it.

# %%
fixed_width = sl.fix(sl.set_values(curve, {"width": 2.0}), "width")
density_fixed = sl.LogDensity(fixed_width, log_likelihood, jacobian=False)
print("names:", density_fixed.names)
x_fixed, trace_fixed = run_adam(density_fixed)
refitted = density_fixed.model(x_fixed)
print({k: round(float(v), 4) for k, v in sl.get_values(refitted).items()}, "| width:", refitted.width)

# %% [markdown]
# ## Your own blackjax loop
#
# Sampling needs the density *with* the Jacobian term. blackjax takes any function of a flat vector,
# so the `LogDensity` goes in as it is. Below, Stan-style window adaptation tunes the step size and
# a diagonal mass matrix, then a `jax.lax.scan` draws with NUTS. (`sl.sample` does the same with
# several chains, progress bars and diagnostics; see the sampling
# tutorial (`06_sampling_diagnostics.py`).) We run 300 warmup steps and 500 draws of one chain, which
# takes seconds for three parameters.

# %%
posterior_density = sl.LogDensity(curve, log_likelihood)  # jacobian=True: for sampling
warmup = blackjax.window_adaptation(blackjax.nuts, posterior_density)
warmup_key, sample_key = jax.random.split(jax.random.key(1))
(state, tuned), _ = warmup.run(warmup_key, x_fit, num_steps=300)
nuts = blackjax.nuts(posterior_density, **tuned)


@jax.jit
def draw(state, key, num=500):
    def step(state, key):
        state, info = nuts.step(key, state)
        return state, (state.position, info.is_divergent)

    return jax.lax.scan(step, state, jax.random.split(key, num))[1]


xs, divergent = draw(state, sample_key)
print("draws:", xs.shape, "| divergences:", int(divergent.sum()))

# %% [markdown]
# The draws are flat unconstrained vectors. `jax.vmap(density.model)` turns them into one model
# holding every draw, from which `sl.get_values` reads the constrained values.

# %%
draws = sl.get_values(jax.vmap(posterior_density.model)(xs))
for name, value in draws.items():
    mean, sd, true = float(value.mean()), float(value.std()), float(true_values[name])
    print(f"{name:>6}: {mean:7.4f} ± {sd:.4f}   truth {true:.4f}")

# %% [markdown]
# ## Saving and loading
#
# `sl.save` writes the arrays of a model; `sl.load` reads them into a model of the same structure
# (here the starting model, whose values are replaced). No code is pickled.

# %%
with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / "light_curve.eqx"
    sl.save(path, fitted)
    restored = sl.load(path, like=curve)
print("identical after the round trip:", bool(eqx.tree_equal(restored, fitted)))

# %% [markdown]
# ## The picture
#
# The data, the truth, the fit, and the curves of 50 posterior draws; on the right, the negative
# log density along the Adam steps.

# %%
fine = jnp.linspace(-10.0, 10.0, 400)
fig, (ax, ax_trace) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
ax.errorbar(times, data, yerr=sigma, fmt=".", color="0.6", label="data")
for i in range(50):
    ax.plot(fine, LightCurve(**{k: v[10 * i] for k, v in draws.items()})(fine), color="C0", alpha=0.1)
ax.plot(fine, truth(fine), "k--", label="truth")
ax.plot(fine, fitted(fine), color="C3", label="fit")
ax.set_xlabel("time [days]")
ax.set_ylabel("flux")
ax.legend()
ax_trace.semilogy(-trace, color="C3", label="all free")
ax_trace.semilogy(-trace_fixed, color="C0", ls=":", label="width fixed")
ax_trace.set_xlabel("Adam step")
ax_trace.set_ylabel("negative log density")
ax_trace.legend()
fig.tight_layout()

# %% [markdown]
# ## Checks
#
# With 101 points at a signal-to-noise of about 20 at the peak, the fit lands within a few percent
# of the truth, and the posterior means agree with it.

# %%
for name, tolerance in {"t0": 0.1, "width": 0.1, "peak": 0.03}.items():
    assert abs(float(fitted_values[name]) - float(true_values[name])) < tolerance, name
    assert abs(float(draws[name].mean()) - float(fitted_values[name])) < tolerance, name
assert density_fixed.names == ("t0", "peak")
assert int(divergent.sum()) == 0
assert eqx.tree_equal(restored, fitted)
print("checks passed")
