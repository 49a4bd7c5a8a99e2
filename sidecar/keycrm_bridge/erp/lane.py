"""The ERP's steps, run as the ``erp`` lane of the worker (``worker.LANES``).

Reading a 100,000-offer package takes seconds; in its own lane that never delays the plugin's
pushes or the KeyCRM sync. Each step is guarded by the lane like every other stage: a failure is
recorded as that step's ``last_error`` and retried under the one retry policy.
"""

from __future__ import annotations

from ..clock import Clock
from ..config import Settings
from ..lanes import Step
from ..wiring import Engines


def erp_wanted(settings: Settings) -> bool:
    return settings.sync_mode == "erp" and settings.erp is not None


def erp_steps(e: Engines, settings: Settings, clock: Clock) -> list[Step]:
    """Jobs (1C files, MoySklad reads), the follow-ups of applied packages, MoySklad's due reads."""
    if not erp_wanted(settings):
        return []
    from .jobs import ErpStage
    from .moysklad_poll import attach_moysklad

    stage = ErpStage(settings, e, clock)
    moysklad = attach_moysklad(stage, settings, clock)
    steps = [Step("erp-jobs", stage.run_next_job), Step("erp-follow-ups", stage.follow_ups)]
    if moysklad is not None:
        steps.append(Step("moysklad", moysklad.tick))
    return steps
