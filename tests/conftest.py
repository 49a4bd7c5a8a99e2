"""Fixtures for every test module: the WooCommerce client and peer tests share an in-thread peer on a
FakeClock that sends its plugin events to a signature-checking receiver, and a WooClient on it; the
KeyCRM client's tests a scripted KeyCRM stub and a rate budget on that clock; the simulator's tests
the simulator in a thread (a module's own fixture of the same name wins)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from keycrm_bridge.budget import RateBudget  # noqa: E402
from keycrm_bridge.clock import FakeClock  # noqa: E402
from keycrm_bridge.woo_client import WooClient  # noqa: E402
from keycrm_bridge.woo_peer.event_receiver import EventReceiver  # noqa: E402
from keycrm_bridge.woo_peer.testing import ThreadPeer, serve_in_thread  # noqa: E402

from keycrm_stub import StubKeyCRM  # noqa: E402
from sim_fixtures import Sim, start_sim  # noqa: E402
from woo_fixtures import SECRET, make_client  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[EventReceiver]:
    with EventReceiver(SECRET, clock=clock) as r:
        yield r


@pytest.fixture
def peer(clock: FakeClock, receiver: EventReceiver) -> Iterator[ThreadPeer]:
    with serve_in_thread(shared_secret=SECRET, sidecar_url=receiver.url, clock=clock) as handle:
        yield handle


@pytest.fixture
def client(peer: ThreadPeer, clock: FakeClock) -> WooClient:
    """A WooClient on the peer."""
    return make_client(peer.url, clock)


@pytest.fixture
def stub() -> Iterator[StubKeyCRM]:
    server = StubKeyCRM()
    yield server
    server.close()
    invalid = [(s.method, s.path, s.spec_errors) for s in server.seen if s.spec_status]
    assert not invalid, f"client sent requests the KeyCRM spec rejects: {invalid}"


@pytest.fixture
def budget(tmp_path: Path, clock: FakeClock) -> Iterator[RateBudget]:
    with RateBudget(tmp_path / "bridge.sqlite3", clock, per_minute=60) as b:
        yield b


@pytest.fixture
def sim() -> Iterator[Sim]:
    """The KeyCRM simulator in a thread on its own FakeClock, no rate limit."""
    s = start_sim()
    yield s
    s.control.close()
    s.handle.stop()
