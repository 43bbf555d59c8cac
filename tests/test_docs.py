"""The examples of the documentation pages run, and give what the text around them says.

Every ```python block of a page runs, in order, in one namespace; blocks with a title (```python
title="...") are fragments of a user's script (they need a cluster, an optional package, a data file)
and are left out.
"""

import pathlib
import re
import warnings

import jax
import numpy as np
import pytest

DOCS = pathlib.Path(__file__).parents[1] / "docs"


def run_page(name: str) -> dict:
    page = DOCS / name
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks, f"{name} has no python example"
    namespace: dict = {}
    # User code runs with JAX's default promotions (numpyro and optax are not clean under "strict"; the
    # numpyro example of sampling.md adds a start (n,) to noise (4, n), as users write it).
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. a fit that hit NaN
        # ... but a fit that says its optimum is poor (parameters at bounds, a high chi^2) is what some
        # pages show on purpose
        warnings.filterwarnings("default", message="fit (ended|did not converge)", category=RuntimeWarning)
        for block in blocks:
            exec(compile(block, str(page), "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_sampling_page():
    ns = run_page("sampling.md")
    table = ns["posterior"].summary(as_dict=True)
    assert "0 divergences" in ns["posterior"].summary()
    # the analytic posterior of the quadratic: NUTS, numpyro and Laplace agree with it
    times = np.asarray(ns["times"], np.float64)
    design = np.stack([np.ones_like(times), times, times**2], axis=1)
    precision = design.T @ design / 0.4**2 + np.eye(3) / 1.5**2
    covariance = np.linalg.inv(precision)
    mean = covariance @ design.T @ np.asarray(ns["data"].values, np.float64) / 0.4**2
    sd = np.sqrt(np.diag(covariance))
    for i in range(3):
        row = table[f"coefficients[{i}]"]
        assert abs(row["mean"] - mean[i]) < 5 * row["mcse"] + 1e-3
        assert abs(row["sd"] / sd[i] - 1) < 0.1
    np.testing.assert_allclose(ns["approximation"].std["coefficients"], sd, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(ns["means"][0]), mean, atol=0.1)
    numpyro_mean = np.asarray(ns["sl"].get_values(ns["models"])["coefficients"].mean(axis=0))
    np.testing.assert_allclose(numpyro_mean, mean, atol=0.05)
    assert ns["images"].shape == (8, 1, 20, 20)
    assert sum(bool(r.converged) for r in ns["results"]) == 8
    assert all(
        float(o.goodness_of_fit(r.model)) < 1.5
        for o, r in zip(ns["observations"], ns["results"], strict=True)
    )
