"""Posterior.summary(group=True): rows gathered by what they belong to (a source), as users read."""

import jax
import jax.numpy as jnp

import scarlet_like as sl
from scarlet_like.core import stacked_lists


def three_sources():
    frame = sl.Frame((1, 24, 24))
    positive = sl.constraints.positive()
    with sl.Scene(frame) as scene:
        for center in ([6.0, 6.0], [12.0, 17.0], [18.0, 8.0]):
            sl.Source(
                sl.Parameter(jnp.array(center)),
                sl.Parameter(jnp.array([20.0]), constraint=positive),
                sl.GaussianMorphology(sl.Parameter(1.5, constraint=positive)),
            )
    return scene


def fake_posterior(model, chains=2, draws=50):
    # draws around the starting point, in the layout `sl.sample` uses (like sources stacked)
    x, unravel = sl.ravel(stacked_lists(model))
    noise = 0.1 * jax.random.normal(jax.random.key(0), (chains, draws, x.shape[0]))
    zeros = jnp.zeros((chains, draws))
    return sl.Posterior(
        samples=x[None, None] + noise,
        log_density=zeros,
        divergences=zeros.astype(bool),
        acceptance_rate=zeros + 0.8,
        num_integration_steps=jnp.ones((chains, draws), jnp.int32),
        energy=jax.random.normal(jax.random.key(1), (chains, draws)),
        step_size=jnp.full((chains,), 0.5),
        inverse_mass_matrix=jnp.ones((chains, x.shape[0])),
        unravel=unravel,
    )


def test_rows_grouped_by_source():
    posterior = fake_posterior(three_sources())
    plain = list(posterior.summary(as_dict=True))
    # the flat vector stacks like sources: every center first
    assert plain[:3] == ["sources[0].center[0]", "sources[0].center[1]", "sources[1].center[0]"]
    grouped = posterior.summary(as_dict=True, group=True)
    per_source = [
        f"sources[{i}].{entry}"
        for i in range(3)
        for entry in ("center[0]", "center[1]", "spectrum[0]", "morphology.sigma")
    ]
    assert list(grouped) == per_source
    # the same numbers, only reordered
    table = posterior.summary(as_dict=True)
    assert all(grouped[name] == table[name] for name in table)
    # the table: one block per source, separated by a blank line
    text = posterior.summary(group=True)
    blocks = text.split("\n\n")
    assert len(blocks) == 3
    assert all(
        f"sources[{i}]." in block and f"sources[{i + 1}]." not in block for i, block in enumerate(blocks)
    )
    assert "\n\n" not in posterior.summary()


def test_names_without_members_group_by_their_first_part():
    from scarlet_like.infer.sample import _owners

    owners = _owners(["t0", "coefficients[0]", "coefficients[1]", "blobs[2].center[0]", "first.width"])
    assert owners == {
        "t0": "t0",
        "coefficients[0]": "coefficients",
        "coefficients[1]": "coefficients",
        "blobs[2].center[0]": "blobs[2]",
        "first.width": "first",
    }
