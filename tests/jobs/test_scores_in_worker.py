"""Adherence and novelty recorded for every image the worker makes, and --until-saturated
stopping a run through the job's stop rule (embedded model, real worker process)."""

from __future__ import annotations

import json

from steady.catalog import open_catalog
from steady.catalog.scores import best_of_run
from steady.config import settings
from steady.jobs.queue import JobQueue
from steady.jobs.supervisor import Supervisor, SupervisorOptions
from steady.params import GenerationRequest
from steady.scoring.novelty import SaturationRule


def test_every_image_gets_adherence_and_novelty_and_the_run_its_variety() -> None:
    with open_catalog(settings().db_path) as catalog, Supervisor(catalog, SupervisorOptions(threads=1)) as sup:
        from steady.jobs.runner import prepare, submit

        job = submit(prepare(GenerationRequest("a red circle", n_images=4, steps=4, seed=5, cfg_scale=5.0), settings()), catalog)
        outcome = sup.run(JobQueue(catalog).claim(job.id))
        assert outcome.state == "done" and outcome.stop_reason == ""
        assert all(isinstance(r.adherence, float) for r in outcome.images)
        assert outcome.images[0].novelty is None and all(r.novelty > 0 for r in outcome.images[1:])
        records = catalog.images_of_run(job.run_id)
        assert [r.adherence for r in records] == [r.adherence for r in outcome.images]
        run = catalog.get_run(job.run_id)
        assert 0 < run.variety <= 1
        ranked = best_of_run(catalog, job.run_id, 4)
        scores = {r.image_id: r.adherence for r in outcome.images}
        assert [scores[i] for i in ranked] == sorted(scores.values(), reverse=True)
        # The same prompt again: its first image is now compared with the four before it.
        again = submit(prepare(GenerationRequest("a red circle", n_images=1, steps=4, seed=99, cfg_scale=5.0), settings()), catalog)
        assert sup.run(JobQueue(catalog).claim(again.id)).images[0].novelty is not None


def test_until_saturated_stops_the_run_with_its_reason() -> None:
    request = GenerationRequest("a blue square", steps=4, seed=1, cfg_scale=5.0, until_saturated=True, max_images=12)
    with open_catalog(settings().db_path) as catalog, Supervisor(catalog, SupervisorOptions(threads=1)) as sup:
        from steady.jobs.runner import prepare, submit

        job = submit(prepare(request, settings()), catalog)
        assert job.n_images == 12 and job.stop_rule == SaturationRule().to_dict()
        # A rule that calls every image "seen before" stops as soon as it may: after min_images.
        with catalog.transaction() as conn:
            conn.execute("UPDATE jobs SET stop_rule_json = ? WHERE id = ?",
                         (json.dumps({**job.stop_rule, "threshold": 10.0}), job.id))  # fmt: skip
        outcome = sup.run(JobQueue(catalog).claim(job.id))
        assert outcome.state == "done" and len(outcome.images) == 6
        assert "saturated after 6 images" in outcome.stop_reason
        run = catalog.get_run(job.run_id)
        assert run.stop_reason == outcome.stop_reason and run.n_done == 6 and run.variety == 1 / 6


def test_a_run_that_reaches_its_cap_says_so() -> None:
    """--until-saturated with a cap below what the rule needs to judge: the run ends at its cap and
    says that, not that the prompt saturated (the CLI and the page print it)."""
    from steady.jobs.runner import run

    request = GenerationRequest("a blue square", steps=2, seed=1, until_saturated=True, n_images=3)
    outcome = run(request, options=SupervisorOptions(threads=1))
    assert outcome.state == "done" and len(outcome.images) == 3 and not outcome.saturated
    assert outcome.stop_reason.startswith("reached its cap of 3 images before variety saturated")
