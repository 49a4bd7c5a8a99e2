"""Builds the long-lived objects from settings, in one place, for the CLI, the worker and tests."""

from __future__ import annotations

import random

from .budget import RateBudget
from .clock import Clock, clock_from_spec
from .config import Settings
from .keycrm_client import KeyCRMClient
from .push import PushEngine
from .store import Store


def make_clock(settings: Settings) -> Clock:
    return clock_from_spec(settings.clock_spec)


def make_keycrm(settings: Settings, clock: Clock, rng: random.Random | None = None) -> KeyCRMClient:
    budget = RateBudget(settings.database_path, clock, per_minute=settings.rate_per_minute)
    return KeyCRMClient(settings.keycrm_base_url, settings.keycrm_api_key, budget, clock,
                        timeout=(3.05, settings.keycrm_timeout_s), rng=rng or random.Random())


def make_push(settings: Settings, store: Store, clock: Clock) -> PushEngine:
    return PushEngine(store, make_keycrm(settings, clock), settings, clock)
