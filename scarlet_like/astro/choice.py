"""Model choice per source: which of several alternative models of a source the data prefer.

```python
fitted = sl.fit(sl.init.scene(obs, centers), obs).model
choice = sl.choose_sources(fitted, obs)                  # point or extended, source by source
choice.model                                             # the fitted scene with the chosen models
[c.chosen for c in choice.choices]                       # ["point", "extended", ...]
```

Each source is tried in turn with each of its alternatives, the rest of the scene as it stands. By
default (`local=True`) an alternative is fitted alone against the data minus the rest of the scene,
which is held at its values: a small program of one source, compiled once per kind of alternative
and reused for every source, and one joint fit of the whole scene at the end. With `local=False`
every alternative scene is fitted whole (all its parameters free): one compilation per alternative
per source. Either way an alternative is scored by a stated criterion computed by
[`scarlet_like.evidence`][]:

- `"bic"` (default): `−2 log L + k ln N` at the fit, `k` the scene's free entries, `N` its usable
  data values. It forgets the priors and needs no Hessian, so it also scores a fit that ends on a
  bound or along a flat direction (an extended model of a star whose size goes to zero).
- `"laplace"`: the Laplace evidence `log Z`. It weighs the priors (they must be proper for the
  parameters that differ between alternatives, as those of [`scarlet_like.init.sersic_morphology`][]
  are), and is undefined where the Hessian is not negative definite: such alternatives are left
  out (their `error` says why), and if that leaves none, the BIC decides.

The alternative with the best score is kept, and the next source is tried on that scene. The
alternatives of a source come from a callable, so any model can compete: the default
[`point_or_extended`][scarlet_like.point_or_extended] offers a point source and a Sérsic
galaxy; a bulge + disk alternative is one more entry of the dictionary it returns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpy as np

from ..core.tree import resolve
from ..infer.evidence import Evidence, evidence
from ..infer.optimize import FitWarning, fit
from .components import MultiComponentSource
from .init import MIN_SIGMA, moments, sersic_morphology
from .measure import GAUSSIAN_R_HALF_PER_SIGMA
from .morphology import PointMorphology
from .observation import Observation
from .scene import PointSource, Scene, Source, _rebuilding

__all__ = ["SourceChoice", "Choice", "choose_sources", "point_or_extended", "CRITERIA"]

#: The criteria `choose_sources` knows.
CRITERIA = ("bic", "laplace")

#: What a candidate callable is: `(source, scene, observations) -> {label: source}`.
Candidates = Callable[[Source, Scene, list[Observation]], dict[str, Source]]


class SourceChoice(NamedTuple):
    """The alternatives tried for one source and the one kept.

    **Fields:**

    - `index`: the source's index in the scene given to `choose_sources` (sources before it that
      were replaced by several move it along in `Choice.model`).
    - `labels`: the alternatives' labels, in the order the candidate callable gave them.
    - `scores`: one [`scarlet_like.Evidence`][] per alternative, at its fit.
    - `chi2`: chi^2 per usable data value of each alternative's fit.
    - `chosen`: the label kept.
    - `criterion`: the criterion that decided (`"bic"`, or `"laplace"`; `"bic"` also when
      `"laplace"` was asked and no alternative had a finite evidence).
    """

    # public name, older than the type check: it hides `tuple.index`, which nothing calls on a choice
    index: int  # type: ignore[assignment]
    labels: tuple[str, ...]
    scores: tuple[Evidence, ...]
    chi2: tuple[float, ...]
    chosen: str
    criterion: str

    def margin(self) -> float:
        """How decisive the choice was: the gap between the best and the second-best score, in nats
        of evidence (`ΔBIC / 2` for the BIC). Infinite with one alternative."""
        values = sorted(
            _merit(score, self.criterion)
            for score in self.scores
            if np.isfinite(_merit(score, self.criterion))
        )
        return math.inf if len(values) < 2 else float(values[-1] - values[-2])


class Choice(NamedTuple):
    """What [`scarlet_like.choose_sources`][] found.

    **Fields:**

    - `model`: the scene with each tried source replaced by its chosen alternative, as fitted after
      the last choice.
    - `choices`: one [`SourceChoice`][scarlet_like.SourceChoice] per tried source.
    """

    model: Scene
    choices: tuple[SourceChoice, ...]


def _merit(score: Evidence, criterion: str) -> float:
    """Larger is better, in nats: the log evidence, or minus half the BIC."""
    return score.log_evidence if criterion == "laplace" else -0.5 * score.bic


def _usable_values(observations: list[Observation]) -> int:
    count = 0
    for observation in observations:
        weights = np.asarray(observation.weights)
        data = np.asarray(observation.data)
        count += int(np.sum((weights > 0) & np.isfinite(weights) & np.isfinite(data)))
    return count


def _chi2_per_value(scene: Scene, observations: list[Observation], n_data: int) -> float:
    return float(sum(float(o.goodness_of_fit(scene)) * _usable_values([o]) for o in observations) / n_data)


def _replaced(scene: Scene, index: int, replacement: list[Source]) -> Scene:
    sources = list(scene.sources)
    sources[index : index + 1] = replacement
    with Scene(scene.frame, sources, shifts=scene.shifts) as new:
        pass  # leaving the block gives shared parameters their identity, as for any scene
    return new


def _without(scene: Scene, index: int, observations: list[Observation]) -> list[Observation]:
    """The observations with the light of every source but `scene.sources[index]` taken out."""
    rest = _replaced(scene, index, [])
    if not rest.sources:
        return observations
    return [eqx.tree_at(lambda o: o.data, o, o.data - o.render(rest)) for o in observations]


def _fit_alone(
    scene: Scene,
    replacement: list[Source],
    residuals: list[Observation],
    max_steps: int,
    options: dict[str, Any],
) -> tuple[list[Source], Any]:
    """Fit `replacement` alone to `residuals`, drawn on the whole frame (no box), so that every
    alternative of one kind is one program whatever its source's box; returned with their own boxes."""
    # the observations' shifts as they are now, fixed: what the residuals were made with
    fixed_shifts = {name: resolve(shift) for name, shift in scene.shifts.items()}
    with _rebuilding(), Scene(scene.frame, shifts=fixed_shifts) as alone:
        for source in replacement:
            source._reboxed(None)
    result = fit(alone, residuals, max_steps=max_steps, **options)
    with _rebuilding(), Scene(scene.frame):
        fitted = [
            source._reboxed(original.box)
            for source, original in zip(result.model.sources, replacement, strict=True)
        ]
    return fitted, result.model


def point_or_extended(source: Source, scene: Scene, observations: list[Observation]) -> dict[str, Source]:
    """The default alternatives: the source as a point source and as a Sérsic galaxy.

    **Arguments:**

    - `source`: the source as it is in the scene.
    - `scene`: the scene (for its frame).
    - `observations`: the observations (for the galaxy's starting size).

    **Returns:**

    `{"point": ..., "extended": ...}`, both with the source's own centre and spectrum Parameters
    (their current values, priors and constraints). The alternative of the source's own kind is the
    source itself; a point source's extended alternative gets a Sérsic profile from
    [`scarlet_like.init.sersic_morphology`][], started at the size the adaptive moments measure
    there (at least 1 pixel: a compact start for a star's alternative that can grow), round, n = 1.
    Called by [`scarlet_like.choose_sources`][] inside a scene block, so the sources it creates join
    no real scene.
    """
    if isinstance(source.morphology, PointMorphology):
        point = source
        values = resolve(source)
        r_half = 1.0
        center = np.asarray(values.center, dtype=np.float64)
        for observation in observations:
            mapping = observation.to_pixels(scene.frame)
            local = center if mapping is None else np.asarray(mapping[0]) @ center + np.asarray(mapping[1])
            height, width = observation.data.shape[-2:]
            if -0.5 <= local[0] <= height - 0.5 and -0.5 <= local[1] <= width - 0.5:
                others = [np.asarray(resolve(s.center), np.float64) for s in scene.sources]
                if mapping is not None:
                    others = [np.asarray(mapping[0]) @ o + np.asarray(mapping[1]) for o in others]
                sigma = float(moments(observation, local, neighbors=np.array(others)).sigma)
                r_half = max(1.0, max(sigma, MIN_SIGMA) * GAUSSIAN_R_HALF_PER_SIGMA)
                break
        extended = Source(source.center, source.spectrum, sersic_morphology(r_half))
    else:
        extended = source
        point = PointSource(source.center, source.spectrum)
    return {"point": point, "extended": extended}


def with_bulge_disk(source: Source, scene: Scene, observations: list[Observation]) -> dict[str, Source]:
    """Alternatives with a bulge + disk galaxy too.

    Those of [`point_or_extended`][scarlet_like.astro.choice.point_or_extended], and for a source
    whose extended alternative has one profile, `"bulge+disk"`: that galaxy split by
    [`scarlet_like.init.bulge_disk`][] into a de Vaucouleurs bulge (its offset free) and an
    exponential disk.

    Pass it as `sl.choose_sources(scene, obs, candidates=sl.with_bulge_disk)`; sources
    that already have several components keep theirs as one more alternative.

    **Returns:**

    `{"point": ..., "extended": ..., "bulge+disk": ...}`.
    """
    from .init import bulge_disk

    if isinstance(source, MultiComponentSource):
        return {"bulge+disk": source}
    alternatives: dict[str, Source] = dict(point_or_extended(source, scene, observations))
    extended = alternatives["extended"]
    if hasattr(extended.morphology, "r_half"):
        alternatives["bulge+disk"] = bulge_disk(extended)
    return alternatives


def choose_sources(
    scene: Scene,
    observations: Observation | list[Observation] | tuple[Observation, ...],
    *,
    candidates: Candidates = point_or_extended,
    criterion: str = "bic",
    sources: Sequence[int] | None = None,
    max_steps: int = 500,
    fit_options: dict[str, Any] | None = None,
    local: bool = True,
) -> Choice:
    """Choose, source by source, the model the data prefer among alternatives.

    **Arguments:**

    - `scene`: a [`scarlet_like.Scene`][], best already fitted (each alternative's fit starts from
      its values).
    - `observations`: the [`scarlet_like.Observation`][] or list of them the scene is fitted to.
    - `candidates`: `(source, scene, observations) -> {label: alternative}`, called inside a scene
      block (so `sl.Source(...)` may be created in it); an alternative is a source, or a list of
      sources that together replace it (a galaxy and a point-like nucleus sharing its centre
      Parameter, say). Reuse the source's own Parameters to start an alternative from its values. Default
      [`point_or_extended`][scarlet_like.point_or_extended].
    - `criterion`: `"bic"` or `"laplace"` (see the module documentation for their basis).
    - `sources`: indices of the sources to try, in this order; default all, in scene order.
    - `max_steps`: the most optimizer steps of each alternative's fit.
    - `fit_options`: more keyword arguments for [`scarlet_like.fit`][].
    - `local`: fit each alternative alone against the data minus the rest of the scene (held at its
      values), then the whole scene once at the end (`max_steps` again); `False` fits every
      alternative scene whole. Local fits compile one small program per kind of alternative instead of
      a whole-scene program per alternative; the scores differ from the whole fits' only by what the
      rest of the scene would have moved. An alternative whose Parameters are shared with other
      sources (beyond the ones it replaces) is fitted whole, as with `False`.

    **Returns:**

    A [`Choice`][scarlet_like.Choice]: the scene with the chosen alternatives, fitted,
    and per source the scores of every alternative (with `local`, the scores and chi^2 are those of
    the alternative fitted alone, the rest of the scene as it stood). Costs one fit per alternative per
    source (small ones with `local`), and one more of the whole scene with `local`.
    Raises `ValueError` for an unknown criterion, a source index out of range, or a candidate
    callable that returns no alternative or something that is not a source (naming the source).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"choose_sources: criterion must be one of {CRITERIA}, got {criterion!r}")
    if not isinstance(scene, Scene):
        raise TypeError(f"choose_sources: expected an sl.Scene, got {type(scene).__name__}")
    observation_list = list(observations) if isinstance(observations, list | tuple) else [observations]
    n_data = _usable_values(observation_list)
    order = list(range(len(scene))) if sources is None else [int(i) for i in sources]
    for index in order:
        if not 0 <= index < len(scene):
            raise ValueError(f"choose_sources: source index {index} is out of range for {len(scene)} sources")
    options = {"progress": False, **(fit_options or {})}
    choices = []
    shifted = list(range(len(scene)))  # where each original source is now
    for index in order:
        with Scene(scene.frame):
            alternatives = candidates(scene.sources[shifted[index]], scene, observation_list)
        if not isinstance(alternatives, dict) or not alternatives:
            raise ValueError(
                f"choose_sources: the candidates for sources[{index}] must be a non-empty dict "
                f"{{label: source}}, got {alternatives!r}"
            )
        fitted, scores, chi2, sizes = [], [], [], []
        residuals = _without(scene, shifted[index], observation_list) if local else None
        for label, alternative in alternatives.items():
            replacement = list(alternative) if isinstance(alternative, list | tuple) else [alternative]
            kinds = (Source, MultiComponentSource)
            if not replacement or not all(isinstance(item, kinds) for item in replacement):
                raise ValueError(
                    f"choose_sources: alternative {label!r} for sources[{index}] must be an sl.Source or a "
                    f"non-empty list of them, got {alternative!r}"
                )
            sizes.append(len(replacement))
            alone = residuals is not None and not _shares_with_the_rest(scene, shifted[index], replacement)
            with warnings.catch_warnings():
                # alternatives are meant to be tried and compared: the poor ones are expected to end badly
                warnings.simplefilter("ignore", FitWarning)
                if alone:
                    assert residuals is not None
                    fitted_sources, scored = _fit_alone(scene, replacement, residuals, max_steps, options)
                    trial, likelihoods = _replaced(scene, shifted[index], fitted_sources), residuals
                else:
                    trial = fit(
                        _replaced(scene, shifted[index], replacement),
                        observation_list,
                        max_steps=max_steps,
                        **options,
                    ).model
                    scored, likelihoods = trial, observation_list
            fitted.append(trial)
            scores.append(evidence(scored, likelihoods, n_data=n_data, hessian=criterion == "laplace"))
            chi2.append(_chi2_per_value(trial, observation_list, n_data))
        used = criterion
        merits = np.array([_merit(score, used) for score in scores])
        if not np.isfinite(merits).any():
            if criterion == "laplace":
                warnings.warn(
                    f"choose_sources: no alternative for sources[{index}] has a finite Laplace evidence "
                    f"({scores[0].error}); the BIC decides",
                    RuntimeWarning,
                    stacklevel=2,
                )
            used = "bic"
            merits = np.array([_merit(score, used) for score in scores])
        best = int(np.nanargmax(np.where(np.isfinite(merits), merits, -np.inf)))
        labels = tuple(alternatives)
        choices.append(
            SourceChoice(
                index=index,
                labels=labels,
                scores=tuple(scores),
                chi2=tuple(chi2),
                chosen=labels[best],
                criterion=used,
            )
        )
        scene = fitted[best]
        # sources after this one move along when it became several
        for later in range(index + 1, len(shifted)):
            shifted[later] += sizes[best] - 1
    if local:
        scene = fit(scene, observation_list, max_steps=max_steps, **options).model
    return Choice(model=scene, choices=tuple(choices))


def _shares_with_the_rest(scene: Scene, index: int, replacement: list[Source]) -> bool:
    """Whether a Parameter of `replacement` is also one of another source of `scene` (a link that a
    fit of the alternative alone would break)."""
    from ..core.parameter import Parameter

    def parameters(tree: Any) -> set[str]:
        leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda node: isinstance(node, Parameter))
        return {leaf.token for leaf in leaves if isinstance(leaf, Parameter)}

    others = [source for position, source in enumerate(scene.sources) if position != index]
    return bool(parameters(replacement) & parameters(others))
