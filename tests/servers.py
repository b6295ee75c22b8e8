"""Real servers for tests: the whole ASGI application under uvicorn, in a thread of the test process.

A thread (not a subprocess) lets tests read the gateway's in-process state (usage records, health)
while every request still crosses a real loopback HTTP connection.
"""

from __future__ import annotations

import socket
import threading

import uvicorn

from tests.helpers import wait_until


class UvicornThread:
    def __init__(self, app: object) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> UvicornThread:
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive())
        if not self._server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
