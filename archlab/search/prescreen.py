"""Pre-screening by zero-cost proxy: the sampler's proposal against K-1 of its neighbours before anything trains.

The study option `prescreen: {proxy: NAME, candidates: K}` (docs/search.md#pre-screening): the sampler proposes
(Optuna ask, define-by-run decode); K-1 neighbours are drawn by redrawing `resample` of the proposal's
dimensions (seeded by the study seed and the trial number); infeasible or already tried ones are dropped; every
candidate is scored by the proxy (archlab.estimators, Mellor et al. 2021; Abdelfattah et al. 2021) on one
minibatch of the study's data. Under the default rule a neighbour replaces the proposal only where it is
predicted better at no more MACs; the proposal is then told PRUNED (`archlab_state: prescreened`) and the
winner is enqueued and asked, so the trial that trains carries the winner's parameters and the sampler learns
from it. `choose` is the one decision, a pure function shared by the search and bench/search_efficiency.py.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from archlab.core.errors import ArchlabError, SpecError
from archlab.core.schema import Range, Schema

__all__ = ["PRESCREENED", "RULES", "Candidate", "Choice", "Neighbourhood", "Prescreen", "Prescreener", "choose",
           "replace_proposal"]

PRESCREENED = "prescreened"  # archlab_state of a proposal a neighbour replaced (told PRUNED, never trained)
RULES = ("dominate", "best")
DRAWS_PER_NEIGHBOUR = 20     # redraws tried per neighbour wanted before settling for fewer (a small space)
STALE_DRAWS = 24             # redraws in a row that find no new network: the neighbourhood is used up


@dataclass(frozen=True, slots=True)
class Prescreen(Schema):
    """The study option `prescreen`: which proxy scores how many candidates, and how neighbours are drawn."""

    proxy: str
    candidates: Annotated[int, Range(ge=2, le=256)] = 8      # K: the proposal and up to K-1 neighbours
    resample: Annotated[int, Range(ge=1, le=64)] = 1         # dimensions of the proposal a neighbour redraws
    # dominate: a neighbour wins only with a higher score at no more MACs; best: the highest score wins
    rule: Literal["dominate", "best"] = "dominate"
    batch_size: Annotated[int, Range(ge=2, le=4096)] = 32    # images in the one minibatch the proxy reads

    @classmethod
    def _prepare(cls, data: Any, path: str) -> Any:
        if isinstance(data, str):
            return {"proxy": data}   # `prescreen: nwot` is short for {proxy: nwot}
        if not isinstance(data, Mapping):
            raise SpecError(path, "must be a proxy name or a mapping {proxy: NAME, candidates: K, ...}", data)
        return data

    def __post_init__(self) -> None:
        self._normalise()
        from archlab.estimators.proxies import PROXIES  # the registry is the list of valid names
        if self.proxy not in PROXIES:
            try:
                PROXIES.lookup(self.proxy)
            except ArchlabError as err:
                text = str(err)
                hint = text[text.index(" (did you mean"):] if " (did you mean" in text else ""
                raise SpecError("proxy", "must be a zero-cost proxy (" + ", ".join(PROXIES.names()) + ")" + hint,
                                self.proxy) from None


@dataclass(frozen=True)
class Candidate:
    """One architecture the pre-screen may train: its Optuna parameters, identity and analytic MACs."""

    params: Mapping[str, Any]
    arch_id: str
    macs: float
    spec: Any = field(default=None, compare=False)  # the ArchSpec, where the scorer builds networks


@dataclass(frozen=True)
class Choice:
    """What `choose` decided: the winner, its score, the proposal's score and how many candidates were scored."""

    winner: Candidate
    score: float
    proposal_score: float
    scored: int
    replaced: bool   # the winner is a neighbour, not the proposal


def choose(proposal: Candidate, neighbours: Callable[[int], Sequence[Candidate]],
           score: Callable[[Sequence[Candidate]], Sequence[float]], k: int, *, rule: str = "dominate") -> Choice:
    """The candidate to train: the proposal or one of up to k-1 of its neighbours, by proxy score and `rule`.

    `dominate`: the neighbour with the best score among those scoring above the proposal at no more MACs
    (cost is the sampler's to explore; the proxy only picks within it); `best`: the best score of all. An equal
    score wins only at fewer MACs, so exact ties keep the proposal; a non-finite score never wins.
    """
    if k < 2:
        raise ArchlabError(f"pre-screening needs k >= 2 candidates, got {k}")
    if rule not in RULES:
        raise ArchlabError(f"unknown pre-screen rule {rule!r}; one of {', '.join(RULES)}")
    pool = [proposal, *list(neighbours(k - 1))[:k - 1]]
    raw = [float(s) for s in score(pool)]
    if len(raw) != len(pool):
        raise ArchlabError(f"the pre-screen scorer returned {len(raw)} scores for {len(pool)} candidates")
    scores = [s if math.isfinite(s) else -math.inf for s in raw]
    best = 0
    for i in range(1, len(pool)):
        if rule == "dominate" and pool[i].macs > proposal.macs:
            continue
        # strictly better wins; an equal score wins only at fewer MACs (the proposal keeps every exact tie)
        if scores[i] > scores[best] or (scores[i] == scores[best] > -math.inf and pool[i].macs < pool[best].macs):
            best = i
    return Choice(winner=pool[best], score=raw[best], proposal_score=raw[0], scored=len(pool), replaced=best != 0)


class _Redraw:
    """A stand-in for an Optuna trial while decoding a neighbour: the proposal's values except the redrawn ones.

    SearchSpace.suggest asks it define-by-run, so a dimension that a redraw switches on is drawn uniformly (the
    space's own random rule) and one it switches off is left out, as a fresh trial would be.
    """

    def __init__(self, base: Mapping[str, Any], redraw: set[str], rng: random.Random) -> None:
        self.base, self.redraw, self.rng = base, redraw, rng
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, values: Sequence[Any] | None, low: float, high: float, log: bool) -> Any:
        old = self.base.get(name)
        if name in self.base and name not in self.redraw:
            value = old
        elif values is not None:
            others = [v for v in values if v != old] or list(values)
            value = others[int(self.rng.random() * len(others))]
        elif log:
            value = math.exp(math.log(low) + self.rng.random() * (math.log(high) - math.log(low)))
        else:
            value = low + self.rng.random() * (high - low)
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(name, list(choices), 0.0, 0.0, False)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return int(self._pick(name, list(range(low, high + 1, step)), low, high, log))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        values = None if step is None else [low + i * step for i in range(int(round((high - low) / step)) + 1)]
        return float(self._pick(name, values, low, high, log))


class Neighbourhood:
    """Neighbours of a point of a search space: the same parameters with `resample` of them drawn again."""

    def __init__(self, space: Any, *, resample: int = 1, img_size: int | None = None, in_chans: int | None = None,
                 num_classes: int | None = None) -> None:
        self.space, self.resample = space, resample
        self.fit = dict(img_size=img_size, in_chans=in_chans, num_classes=num_classes)
        self.sizes = {d.name: d.size for d in space.dimensions}
        self._ids: dict[Any, str] = {}  # spec -> arch_id: the content hash costs ~1000x a dict lookup of the spec

    def draws(self, params: Mapping[str, Any], rng: random.Random) -> Iterator[tuple[dict[str, Any], Any]]:
        """Endless redraws as (params, spec); spec is None where the draw is not a valid network."""
        movable = sorted(n for n in params if self.sizes.get(n, 1) > 1)
        if not movable:
            return
        while True:
            redraw = set(rng.sample(movable, min(self.resample, len(movable))))
            trial = _Redraw(params, redraw, rng)
            try:
                spec = self.space.suggest(trial, **self.fit)
            except SpecError:  # not a valid network (InvalidPointError): dropped like an infeasible one
                yield trial.params, None
                continue
            yield trial.params, spec

    def arch_id(self, spec: Any) -> str:
        """`spec.arch_id`, remembered (equal specs have equal ids; the memo is bounded)."""
        arch_id = self._ids.get(spec)
        if arch_id is None:
            if len(self._ids) >= 100_000:
                self._ids.clear()
            arch_id = self._ids[spec] = spec.arch_id
        return arch_id

    def near(self, params: Mapping[str, Any], rng: random.Random, n: int, keep: Callable[[Any, str], bool],
             exclude: set[str]) -> list[tuple[dict[str, Any], Any, str]]:
        """Up to `n` distinct neighbours as (params, spec, arch_id): `keep(spec, arch_id)` accepts them and
        `exclude` does not hold their arch_id. Stops early once draws stop finding new networks (a small space,
        or one whose near points are all tried)."""
        out: list[tuple[dict[str, Any], Any, str]] = []
        seen = set(exclude)
        stale = 0
        for tries, (point, spec) in enumerate(self.draws(params, rng), start=1):
            arch_id = None if spec is None else self.arch_id(spec)
            if arch_id is not None and arch_id not in seen:
                seen.add(arch_id)
                stale = 0
                if keep(spec, arch_id):
                    out.append((point, spec, arch_id))
            else:
                stale += 1
            if len(out) >= n or tries >= DRAWS_PER_NEIGHBOUR * n or stale >= STALE_DRAWS:
                break
        return out


class Prescreener:
    """The search's pre-screen: neighbours from the study's space, scores from its proxy on one minibatch."""

    def __init__(self, config: Prescreen, neighbourhood: Neighbourhood, data: Any, *, seed: int) -> None:
        from archlab.estimators.score import proxy_data
        self.config, self.neighbourhood, self.seed = config, neighbourhood, seed
        self.batch = proxy_data(data, batch_size=config.batch_size, batches=1, seed=seed)

    def score(self, candidates: Sequence[Candidate]) -> list[float]:
        """The proxy's score of each candidate's network, built with the study's seed (higher = better)."""
        from archlab.estimators.score import score_specs
        rows = score_specs([c.spec for c in candidates], self.batch, [self.config.proxy], seed=self.seed)
        return [float(r[self.config.proxy]) for r in rows]

    def screen(self, number: int, params: Mapping[str, Any], spec: Any, *, keep: Callable[[Any], bool],
               exclude: set[str]) -> Choice:
        """The choice for trial `number` (its parameters and spec); neighbours must pass `keep`, miss `exclude`."""
        from archlab.nn.complexity import complexity
        rng = random.Random(f"prescreen:{self.seed}:{number}")  # a str seed hashes the same in every process

        def neighbours(n: int) -> list[Candidate]:
            near = self.neighbourhood.near(params, rng, n, lambda s, _: keep(s), exclude | {proposal.arch_id})
            return [Candidate(p, a, complexity(s).macs, s) for p, s, a in near]

        proposal = Candidate(dict(params), spec.arch_id, complexity(spec).macs, spec)
        return choose(proposal, neighbours, self.score, self.config.candidates, rule=self.config.rule)


def record(trial: Any, choice: Choice, proxy: str) -> None:
    """The proxy's verdict on a trial that trains: its score and how many candidates were scored."""
    trial.set_user_attr("prescreen_proxy", proxy)
    trial.set_user_attr("prescreen_score", _finite(choice.score))
    trial.set_user_attr("prescreen_scored", choice.scored)


def replace_proposal(optuna_study: Any, trial: Any, choice: Choice, proxy: str) -> Any:
    """Tell `trial` PRUNED (prescreened) and ask the chosen neighbour instead: the new trial, already recorded.

    Public Optuna API only: `tell(state=PRUNED)`, `enqueue_trial(params, user_attrs=...)` and `ask()`, which
    takes the enqueued trial first. The caller asks only with no other trial waiting, so it is this one.
    """
    from optuna.trial import TrialState

    from archlab.search.results import STATE_ATTR
    trial.set_user_attr(STATE_ATTR, PRESCREENED)
    trial.set_user_attr("prescreen_proxy", proxy)
    trial.set_user_attr("prescreen_score", _finite(choice.proposal_score))
    trial.set_user_attr("prescreen_winner", choice.winner.arch_id)
    optuna_study.tell(trial, state=TrialState.PRUNED)
    optuna_study.enqueue_trial(dict(choice.winner.params), user_attrs={"prescreen_of": trial.number},
                               skip_if_exists=False)
    new = optuna_study.ask()
    if new.user_attrs.get("prescreen_of") != trial.number:  # another trial was waiting: a broken invariant
        raise ArchlabError(f"pre-screening enqueued the winner of trial {trial.number} but Optuna asked trial "
                           f"{new.number}, queued by someone else")
    record(new, choice, proxy)
    return new


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
