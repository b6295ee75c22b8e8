"""The overview's WebSocket: session-authenticated, same-origin only, told when the user's usage changes."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from accounts.consumers import UNAUTHENTICATED
from accounts.live import announce_through_layer
from llmapi.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    """Embedded mode's layer: everything in this process."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def session_cookie(user) -> bytes:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"sessionid={session.session_key}".encode()


def communicator(*headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/usage/", headers=[(b"host", b"127.0.0.1:8000"), *headers])


# Synchronous tests driving the socket through async_to_sync: the database stays in the test's thread.


def test_a_logged_in_page_hears_its_users_usage_change_and_nobody_elses(alice, bob):
    alices = communicator(ORIGIN, (b"cookie", session_cookie(alice)))
    bobs = communicator(ORIGIN, (b"cookie", session_cookie(bob)))

    async def scenario() -> None:
        assert (await alices.connect())[0]
        assert (await bobs.connect())[0]
        await announce_through_layer(user_ids=[alice.pk, alice.pk])
        assert await alices.receive_from() == "usage-changed"
        assert await alices.receive_nothing()  # one message per user, however many records
        assert await bobs.receive_nothing()
        await alices.disconnect()
        await bobs.disconnect()

    async_to_sync(scenario)()


def test_an_anonymous_socket_is_closed():
    connected, code = async_to_sync(communicator(ORIGIN).connect)()
    assert not connected
    assert code == UNAUTHENTICATED


def test_another_sites_page_cannot_open_the_socket(alice):
    foreign = communicator((b"origin", b"https://evil.example"), (b"cookie", session_cookie(alice)))
    connected, _ = async_to_sync(foreign.connect)()
    assert not connected
