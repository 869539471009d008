"""The SQLite catalog of prompts, runs and images (see db.py), and its crash repair (reconcile.py).

    from steady.catalog import open_catalog, reconcile
"""

from __future__ import annotations

from steady.catalog.db import Catalog, open_catalog
from steady.catalog.queries import RUN_STATUSES, ImageRecord, RunSummary
from steady.catalog.reconcile import ReconcileReport, reconcile

__all__ = ["RUN_STATUSES", "Catalog", "ImageRecord", "ReconcileReport", "RunSummary", "open_catalog", "reconcile"]
