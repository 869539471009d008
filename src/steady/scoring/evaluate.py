"""How well ranking and the saturation rule work, measured against the embedded model's ground
truth (the analytic checker). Pure functions over scores and verdicts: `steady eval-iterate`
produces the inputs; unit tests pin the logic on synthetic cases.

Ranking: for a run of one prompt, the precision of its top k images by adherence (the share the
checker finds fully correct) against the run's base rate (the share of all its images).
Saturation: where SaturationRule would have stopped a run (its novelty sequence), and the share
of the distinct attribute combinations of the whole run that had appeared by then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from steady.scoring.novelty import SaturationRule

SCORER_NAMES = {"model": "generating model's own score", "clip": "CLIP scorer"}
RANKING_TARGET = 2.0  # top-3 precision >= 2x the base rate, where the base rate is <= 50 %
RANKING_BASE_MAX = 0.5
COST_TARGET = 0.25  # scoring <= 25 % of generation time
STOP_BY = 12  # fully specified prompts: stop by the 12th image ...
STOP_SHARE = 0.9  # ... in at least 9 of 10 runs
COVERAGE_TARGET = 0.9  # free prompts: combinations at the stop >= 90 % of the full run's


def precision_at_k(scores: list[float], correct: list[bool], k: int = 3) -> float:
    if len(scores) != len(correct) or not scores:
        raise ValueError("scores and correct must be equally long and not empty")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return sum(correct[i] for i in order) / len(order)


def base_rate(correct: list[bool]) -> float:
    return sum(correct) / len(correct) if correct else 0.0


def stop_index(novelties: list[float | None], rule: SaturationRule) -> int | None:
    """How many images the run would have made before the rule stopped it (None: it never stops)."""
    for n in range(1, len(novelties) + 1):
        if rule.check(novelties[:n]) is not None:
            return n
    return None


def coverage(combos: list[tuple[Any, ...]], n: int) -> float:
    """Share of the distinct combinations of the whole sequence present in its first n items."""
    whole = set(combos)
    return len(set(combos[:n])) / len(whole) if whole else 1.0


@dataclass
class RankingRow:
    prompt: str
    images: int
    base_rate: float
    top3_precision: float
    scorer: str = "model"  # "model" (the generating model's own score) or "clip" (a CLIP model folder)
    first_seed: int = 0  # the run's seeds: first_seed .. first_seed + images - 1

    @property
    def counts(self) -> bool:
        """Whether the 2x target applies (base rate <= 50 % and above 0)."""
        return 0 < self.base_rate <= RANKING_BASE_MAX


@dataclass
class SaturationRow:
    prompt: str
    fully_specified: bool
    images: int
    stopped_at: int | None
    combos_full: int
    combos_at_stop: int
    coverage_at_stop: float
    median_novelty: float | None


def saturation_row(prompt: str, fully_specified: bool, images: list[Any], combos: list[tuple[Any, ...]],
                   rule: SaturationRule) -> SaturationRow:
    """Where `rule` stops a run of `images` (PIL, in order) and how many of the run's distinct
    attribute `combos` (one per image) it had seen by then."""  # fmt: skip
    import statistics

    from steady.scoring.novelty import image_feature, novelty

    features = [image_feature(im) for im in images]
    novelties = [novelty(f, features[:i]) for i, f in enumerate(features)]
    stopped = stop_index(novelties, rule)
    at = stopped or len(images)
    known = [v for v in novelties if v is not None]
    return SaturationRow(prompt, fully_specified, len(images), stopped, len(set(combos)), len(set(combos[:at])),
                         coverage(combos, at), statistics.median(known) if known else None)  # fmt: skip


@dataclass
class IterateReport:
    ranking: list[RankingRow] = field(default_factory=list)
    saturation: list[SaturationRow] = field(default_factory=list)
    ideal: list[SaturationRow] = field(default_factory=list)  # the same rule on ground-truth scenes
    generate_seconds: float = 0.0
    score_seconds: dict[str, float] = field(default_factory=dict)  # per scorer
    rule: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "summary": self.summary()}

    def scorers(self) -> list[str]:
        return list(dict.fromkeys(r.scorer for r in self.ranking))

    def ranking_summary(self, scorer: str) -> dict[str, Any]:
        """The ranking target for one scorer: its counted runs (prompt and seeds), mean top-3 vs mean base
        rate, cost."""
        counted = [r for r in self.ranking if r.counts and r.scorer == scorer]
        lift = [r.top3_precision / r.base_rate for r in counted]
        base, top = _mean([r.base_rate for r in counted]), _mean([r.top3_precision for r in counted])
        seconds = self.score_seconds.get(scorer)
        return {
            "ranking_runs_counted": len(counted),
            "mean_base_rate": base,
            "mean_top3_precision": top,
            "mean_lift": _mean(lift),
            "ranking_met": bool(counted) and top is not None and base is not None and top >= RANKING_TARGET * base,
            "score_cost_ratio": seconds / self.generate_seconds if seconds is not None and self.generate_seconds else None,
        }

    def summary(self) -> dict[str, Any]:
        """The saturation figures and, at the top level, the generating model's own ranking figures
        (the issue's default scorer); every scorer's under "by_scorer"."""
        full, free, stopped = _split(self.saturation)
        ideal_full, ideal_free, ideal_stopped = _split(self.ideal)
        return {
            **self.ranking_summary("model"),
            "by_scorer": {name: self.ranking_summary(name) for name in self.scorers()},
            "full_stopped_by_12": f"{len(stopped)}/{len(full)}",
            "saturation_full_met": bool(full) and len(stopped) >= STOP_SHARE * len(full),
            "free_min_coverage": min((r.coverage_at_stop for r in free), default=None),
            "saturation_free_met": bool(free) and all(r.coverage_at_stop >= COVERAGE_TARGET for r in free),
            "ideal_full_stopped_by_12": f"{len(ideal_stopped)}/{len(ideal_full)}",
            "ideal_free_min_coverage": min((r.coverage_at_stop for r in ideal_free), default=None),
        }  # fmt: skip


def _split(rows: list[SaturationRow]) -> tuple[list[SaturationRow], list[SaturationRow], list[SaturationRow]]:
    full = [r for r in rows if r.fully_specified]
    free = [r for r in rows if not r.fully_specified]
    stopped = [r for r in full if r.stopped_at is not None and r.stopped_at <= STOP_BY]
    return full, free, stopped


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def format_report(report: IterateReport) -> str:
    s = report.summary()
    lines = []
    for scorer in report.scorers():
        lines.append(f"ranking by the {SCORER_NAMES.get(scorer, scorer)} (top 3 vs the run's base rate; the checker "
                     "judges every named attribute):")  # fmt: skip
        for r in report.ranking:
            if r.scorer == scorer:
                mark = "" if r.counts else "   (base rate outside (0, 50 %]: not counted)"
                seeds = f"seeds {r.first_seed}-{r.first_seed + r.images - 1}"
                lines.append(f"  {r.prompt:<30} {seeds:<13} base {r.base_rate:5.0%}  top-3 {r.top3_precision:5.0%}{mark}")
        k = s["by_scorer"][scorer]
        lines.append(f"  counted runs (prompt, seeds): {k['ranking_runs_counted']}, mean base {_pct(k['mean_base_rate'])}, "
                     f"mean top-3 {_pct(k['mean_top3_precision'])} (target 2x): {'met' if k['ranking_met'] else 'MISSED'}")
        lines.append(f"  scoring cost: {_pct(k['score_cost_ratio'])} of generation time (target <= 25 %)")
    lines.append(f"saturation on the model's images (rule: {report.rule}):")
    lines.extend(_saturation_lines(report.saturation))
    lines.append(f"  fully specified prompts stopped by image {STOP_BY}: {s['full_stopped_by_12']} (target 9/10): "
                 f"{'met' if s['saturation_full_met'] else 'MISSED'}")
    lines.append(f"  free prompts, combinations at the stop vs 30 images: min {_pct(s['free_min_coverage'])} "
                 f"(target >= 90 %): {'met' if s['saturation_free_met'] else 'MISSED'}")
    if report.ideal:
        lines.append("the same rule on ideal images (ground-truth scenes drawn for each prompt: what a model that "
                     "follows every named attribute would show):")  # fmt: skip
        lines.extend(_saturation_lines(report.ideal))
        lines.append(f"  fully specified prompts stopped by image {STOP_BY}: {s['ideal_full_stopped_by_12']}; "
                     f"free prompts, min coverage at the stop: {_pct(s['ideal_free_min_coverage'])}")  # fmt: skip
    return "\n".join(lines)


def _saturation_lines(rows: list[SaturationRow]) -> list[str]:
    lines = []
    for r in rows:
        kind = "full" if r.fully_specified else "free"
        stop = "never" if r.stopped_at is None else str(r.stopped_at)
        median = "n/a" if r.median_novelty is None else f"{r.median_novelty:.3f}"
        lines.append(f"  [{kind}] {r.prompt:<66} stop {stop:>5}  combos {r.combos_at_stop}/{r.combos_full} "
                     f"({r.coverage_at_stop:.0%})  median novelty {median}")  # fmt: skip
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
