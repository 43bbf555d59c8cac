"""Model choice per source: point vs extended on a simulated star + galaxy, by BIC and by evidence."""

import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.astro.choice import point_or_extended

SIZE = 33
PSF = sl.GaussianPSF(1.2)
STAR, GALAXY = (9.3, 10.6), (21.8, 21.4)
NOISE = 0.05


@pytest.fixture(scope="module")
def observation():
    """Two bands: a star and an exponential galaxy of r_half 3 px, both at S/N of a few hundred."""
    frame = sl.Frame((2, SIZE, SIZE))
    with sl.Scene(frame) as truth:
        sl.PointSource(np.asarray(STAR, np.float32), np.array([40.0, 30.0], np.float32))
        sl.Source(
            np.asarray(GALAXY, np.float32),
            np.array([40.0, 60.0], np.float32),
            sl.SersicMorphology(1.0, 3.0, np.array([0.2, -0.1], np.float32)),
        )
    blank = sl.Observation(np.zeros((2, SIZE, SIZE)), psf=PSF)
    image = np.asarray(blank.render(truth), np.float64)
    data = image + NOISE * np.random.default_rng(3).normal(size=image.shape)
    return sl.Observation(data, weights=np.full(data.shape, NOISE**-2), psf=PSF)


def test_the_automatic_scene_tells_the_star_from_the_galaxy(observation):
    scene = sl.init.scene(observation, [STAR, GALAXY])
    assert [type(s) for s in scene.sources] == [sl.PointSource, sl.Source]
    galaxy = sl.get_values(scene)
    # the galaxy's start: PSF-corrected moments of an n = 1 profile of r_half 3 (a Gaussian's r_half of
    # the same second moments is smaller: the exponential's wings), shape within 0.1 of the truth
    assert 1.5 < float(galaxy["sources[1].morphology.r_half"]) < 4.0
    np.testing.assert_allclose(galaxy["sources[1].morphology.ellipticity"], [0.2, -0.1], atol=0.1)


# three fits compiled (the two alternatives of one source, then the joint fit): 60-80 s on 2 cores; the
# default suite chooses by BIC in test_local_choice_compiles_one_program_per_kind_of_alternative
@pytest.mark.slow
def test_choose_sources_turns_an_extended_star_into_a_point_by_bic(observation):
    wrong = sl.init.scene(observation, [STAR, GALAXY], kinds=["extended", "point"])
    assert [type(s) for s in wrong.sources] == [sl.Source, sl.PointSource]
    choice = sl.choose_sources(wrong, observation, sources=[0], max_steps=200)
    (star,) = choice.choices
    assert star.labels == ("point", "extended") and star.chosen == "point" and star.criterion == "bic"
    assert isinstance(choice.model.sources[0], sl.PointSource)
    # The extended star fits as well as the point (its size shrinks), so only the penalty of its 4 extra
    # entries (n, r_half, g1, g2) speaks against it: ln(N) = 7.7 nats each, less what it gains in fit.
    assert star.scores[1].n_free - star.scores[0].n_free == 4
    assert star.scores[0].n_data == 2 * SIZE * SIZE
    assert abs(star.chi2[0] - star.chi2[1]) < 0.01
    assert 0 < star.margin() <= 2 * np.log(2 * SIZE * SIZE) + 1e-3


@pytest.mark.slow
def test_choose_sources_corrects_both_wrong_kinds_by_bic(observation):
    wrong = sl.init.scene(observation, [STAR, GALAXY], kinds=["extended", "point"])
    choice = sl.choose_sources(wrong, observation, max_steps=300)
    assert [c.chosen for c in choice.choices] == ["point", "extended"]
    assert [type(s) for s in choice.model.sources] == [sl.PointSource, sl.Source]
    galaxy = choice.choices[1]
    # a point galaxy leaves chi^2 far above 1
    assert galaxy.chi2[0] > 2.0 and galaxy.chi2[1] < 1.1 and galaxy.margin() > 100


@pytest.mark.slow
def test_choose_sources_by_laplace_evidence_and_custom_candidates(observation):
    scene = sl.init.scene(observation, [STAR, GALAXY])
    fitted = sl.fit(scene, observation, max_steps=300, progress=False).model
    calls = []

    def only_the_galaxy_alternatives(source, scene, observations):
        calls.append(type(source).__name__)
        return point_or_extended(source, scene, observations)

    choice = sl.choose_sources(
        fitted, observation, criterion="laplace", sources=[1], candidates=only_the_galaxy_alternatives
    )
    assert calls == ["Source"] and len(choice.choices) == 1
    (galaxy,) = choice.choices
    assert galaxy.criterion == "laplace" and galaxy.chosen == "extended"
    point, extended = galaxy.scores
    assert np.isfinite(extended.log_evidence) and extended.log_evidence > point.log_evidence + 100
    assert choice.model.sources[0] is not None and len(choice.model) == 2


def test_choose_sources_names_bad_input(observation):
    scene = sl.init.scene(observation, [STAR, GALAXY])
    with pytest.raises(ValueError, match="criterion"):
        sl.choose_sources(scene, observation, criterion="aic")
    with pytest.raises(ValueError, match="out of range"):
        sl.choose_sources(scene, observation, sources=[2])
    with pytest.raises(ValueError, match=r"sources\[0\]"):
        sl.choose_sources(scene, observation, candidates=lambda source, scene, obs: {})
    with pytest.raises(ValueError, match=r"'bad' for sources\[0\]"):
        sl.choose_sources(scene, observation, candidates=lambda source, scene, obs: {"bad": 1.0})


@pytest.mark.slow
def test_an_alternative_of_several_sources_moves_the_later_ones_along(observation):
    scene = sl.init.scene(observation, [STAR, GALAXY], kinds=["extended", "extended"])
    seen = []

    def split_the_first(source, scene, observations):
        seen.append(np.asarray(sl.resolve(source.center)))
        if not seen[1:]:  # the star: a compact galaxy and a point sharing its centre Parameter
            core = sl.PointSource(source.center, np.asarray(sl.resolve(source.spectrum)) * 0.5)
            return {"with a core": [source, core]}
        return {"as it is": source}

    choice = sl.choose_sources(scene, observation, candidates=split_the_first, max_steps=100)
    assert [c.index for c in choice.choices] == [0, 1]
    assert [c.chosen for c in choice.choices] == ["with a core", "as it is"]
    # the galaxy was found at index 2 of the three-source scene, and handed over as itself
    np.testing.assert_allclose(seen[1], GALAXY, atol=0.5)
    assert [type(s) for s in choice.model.sources] == [sl.Source, sl.PointSource, sl.Source]
    values = sl.get_values(choice.model)
    assert "sources[1].center" not in values  # shared with sources[0]: one free entry for both
    np.testing.assert_allclose(values["sources[0].center"], STAR, atol=0.3)


def test_local_choice_compiles_one_program_per_kind_of_alternative(caplog):
    # three sources, two kinds of alternative: fitted alone against the rest of the scene, the point
    # and the extended alternative are one program each, whatever the source, plus the final joint fit
    import logging

    import jax

    frame = sl.Frame((2, SIZE, SIZE))
    stars, galaxy = [(8.3, 9.6), (24.2, 8.7)], (17.8, 23.4)
    with sl.Scene(frame) as truth:
        for center in stars:
            sl.PointSource(np.asarray(center, np.float32), np.array([30.0, 20.0], np.float32))
        sl.Source(
            np.asarray(galaxy, np.float32), np.array([40.0, 60.0], np.float32), sl.GaussianMorphology(2.5)
        )
    blank = sl.Observation(np.zeros((2, SIZE, SIZE)), psf=PSF)
    image = np.asarray(blank.render(truth), np.float64)
    data = image + NOISE * np.random.default_rng(4).normal(size=image.shape)
    observation = sl.Observation(data, weights=np.full(data.shape, NOISE**-2), psf=PSF)

    def free_size():
        return sl.GaussianMorphology(sl.Parameter(np.float32(1.5), constraint=sl.constraints.positive()))

    def point_or_gaussian(source, scene, observations):
        return {
            "point": sl.PointSource(source.center, source.spectrum),
            "extended": sl.Source(source.center, source.spectrum, free_size()),
        }

    with sl.Scene(frame) as start:
        for center in [*stars, galaxy]:
            spectrum = sl.Parameter(np.array([30.0, 30.0], np.float32), constraint=sl.constraints.positive())
            sl.Source(sl.Parameter(np.asarray(center, np.float32)), spectrum, free_size())
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        choice = sl.choose_sources(start, observation, candidates=point_or_gaussian, max_steps=300)
    fits = [r for r in caplog.records if "Compiling" in r.getMessage() and "_fit_segment" in r.getMessage()]
    assert [c.chosen for c in choice.choices] == ["point", "point", "extended"]
    assert len(fits) == 3, [r.getMessage()[:120] for r in fits]
    assert [type(s) for s in choice.model.sources] == [sl.PointSource, sl.PointSource, sl.Source]
    assert float(observation.goodness_of_fit(choice.model)) < 1.1
    np.testing.assert_allclose(sl.resolve(choice.model.sources[2].spectrum), [40.0, 60.0], rtol=0.05)
