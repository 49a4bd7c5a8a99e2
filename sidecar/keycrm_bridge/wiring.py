"""Builds the long-lived objects from settings, in one place, for the CLI, the worker and tests."""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import write_barrier
from .budget import RateBudget
from .clock import Clock, clock_from_spec
from .config import Settings
from .keycrm_client import KeyCRMClient
from .ledger import Ledger
from .metrics import RecordingSession
from .pull import PullSources
from .push import PushEngine
from .resync import ResyncRunner
from .store import Store
from .sync import SyncEngine
from .woo_client import WooClient
from .woo_skumap import SkuMap


def make_clock(settings: Settings) -> Clock:
    return clock_from_spec(settings.clock_spec)


def make_keycrm(settings: Settings, clock: Clock, rng: random.Random | None = None,
                max_attempts: int = 5) -> KeyCRMClient:
    budget = RateBudget(settings.database_path, clock, per_minute=settings.rate_per_minute)
    return KeyCRMClient(settings.keycrm_base_url, settings.keycrm_api_key, budget, clock,
                        timeout=(3.05, settings.keycrm_timeout_s), rng=rng or random.Random(),
                        max_attempts=max_attempts,
                        session=RecordingSession(settings.database_path, settings.keycrm_base_url))


def make_woo(settings: Settings, clock: Clock, max_attempts: int = 5) -> WooClient | None:
    if not settings.has_woocommerce:
        return None
    return WooClient(settings.woo_url, settings.woo_consumer_key, settings.woo_consumer_secret,
                     settings.shared_secret, clock, max_attempts=max_attempts)


@dataclass
class Engines:
    store: Store
    ledger: Ledger
    keycrm: KeyCRMClient
    woo: WooClient | None
    skumap: SkuMap | None
    push: PushEngine
    sync: SyncEngine
    pull: PullSources
    resync: ResyncRunner | None = None


def make_engines(settings: Settings, clock: Clock, store: Store | None = None) -> Engines:
    store = store or Store(settings.database_path)
    ledger = Ledger(store)
    keycrm = make_keycrm(settings, clock)
    woo = make_woo(settings, clock)
    skumap = SkuMap(settings.database_path) if woo is not None else None
    push = PushEngine(store, keycrm, settings, clock, ledger=ledger, skumap=skumap)
    sync = SyncEngine(store, ledger, keycrm, settings, clock, woo=woo, skumap=skumap,
                      before_woo_write=write_barrier.from_env(clock))
    pull = PullSources(store, ledger, sync, keycrm, settings, clock)
    resync = ResyncRunner(settings, clock, store, ledger, skumap=skumap)
    return Engines(store, ledger, keycrm, woo, skumap, push, sync, pull, resync)
