"""Adherence and novelty in the catalog: recorded per image as the supervisor hears of it,
summarised per run when the run ends.

    novelty = record_scores(catalog, image_id, adherence=0.004, feature=vector)
    finish_run_scores(catalog, run_id, threshold=0.06, stop_reason="")
    best = best_of_run(catalog, run_id, 3)          # image ids, highest adherence first

Novelty compares an image with the earlier images (lower ids) of the same prompt, negative prompt
and model that are not in the trash (steady.scoring.novelty explains the feature and distance).
"""

from __future__ import annotations

import numpy as np

from steady.catalog.db import Catalog
from steady.scoring.novelty import (
    FEATURE_KIND,
    from_blob,
    novelty,
    to_blob,
    variety_index,
)


def record_scores(catalog: Catalog, image_id: int, adherence: float | None, feature: np.ndarray | None) -> float | None:
    """Store the image's adherence and feature; returns (and stores) its novelty."""
    with catalog.transaction() as conn:
        row = conn.execute("SELECT prompt, negative_prompt, model_hash FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            return None
        value = None
        if feature is not None:
            earlier = conn.execute(
                "SELECT f.vector FROM image_features f JOIN images i ON i.id = f.image_id WHERE i.prompt = ?"
                " AND i.negative_prompt = ? AND i.model_hash = ? AND f.kind = ? AND i.id < ? AND i.trash_path IS NULL",
                (*row, FEATURE_KIND, image_id),
            ).fetchall()
            value = novelty(feature, [from_blob(r[0]) for r in earlier])
            conn.execute("INSERT OR REPLACE INTO image_features (image_id, kind, vector) VALUES (?, ?, ?)",
                         (image_id, FEATURE_KIND, to_blob(feature)))  # fmt: skip
        conn.execute("UPDATE images SET adherence = ?, novelty = ? WHERE id = ?", (adherence, value, image_id))
    return value


def run_novelties(catalog: Catalog, run_id: int) -> list[float | None]:
    with catalog.reading() as conn:
        return [r[0] for r in conn.execute("SELECT novelty FROM images WHERE run_id = ? ORDER BY idx", (run_id,))]


def finish_run_scores(catalog: Catalog, run_id: int, threshold: float, stop_reason: str = "") -> float:
    """Store the run's variety index (share of images that were new) and why it stopped."""
    variety = variety_index(run_novelties(catalog, run_id), threshold)
    with catalog.transaction() as conn:
        conn.execute("UPDATE runs SET variety = ?, stop_reason = ? WHERE id = ?", (variety, stop_reason, run_id))
    return variety


def best_of_run(catalog: Catalog, run_id: int, limit: int = 3) -> list[int]:
    """The run's image ids by adherence, best first (unscored images last)."""
    with catalog.reading() as conn:
        rows = conn.execute(
            "SELECT id FROM images WHERE run_id = ? AND trash_path IS NULL"
            " ORDER BY adherence IS NULL, adherence DESC, idx LIMIT ?", (run_id, limit)).fetchall()  # fmt: skip
    return [r[0] for r in rows]
