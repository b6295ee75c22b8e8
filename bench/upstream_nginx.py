"""The cheapest upstream there is: nginx answering from its config, started and stopped by the bench.

`POST /v1/messages` answers a fixed message; with `?mode=stream` in the query (the gateway
forwards the query string unchanged) it answers a fixed SSE stream of 20 deltas instead.
`POST /v1/messages/count_tokens` answers a fixed count. Everything lives in a temporary folder.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench import bodies
from bench.netutil import wait_for_port

CONFIG = """\
daemon off;
worker_processes 1;
worker_rlimit_nofile 40000;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 20000;
    multi_accept on;
}}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=16384;
        location = /v1/messages {{
            error_page 418 = @stream;
            if ($arg_mode = stream) {{
                return 418;
            }}
            default_type application/json;
            return 200 '{message}';
        }}
        location @stream {{
            default_type text/event-stream;
            add_header cache-control no-cache;
            return 200 '{stream}';
        }}
        location = /v1/messages/count_tokens {{
            default_type application/json;
            return 200 '{count}';
        }}
        location / {{
            default_type application/json;
            return 404 '{{"type":"error","error":{{"type":"not_found_error","message":"not found"}}}}';
        }}
    }}
}}
"""


def quoted(body: bytes) -> str:
    """A body as the inside of a single-quoted nginx string (which also expands `$name`)."""
    text = body.decode()
    if "$" in text:
        raise ValueError("nginx would expand '$' in a returned body")
    return text.replace("\\", "\\\\").replace("'", "\\'")


def write_config(root: Path, port: int) -> Path:
    config = CONFIG.format(
        root=root,
        port=port,
        message=quoted(bodies.message_body(bodies.FIXED_MODEL)),
        stream=quoted(bodies.stream_body(bodies.FIXED_MODEL)),
        count=quoted(bodies.COUNT_TOKENS_BODY),
    )
    path = root / "nginx.conf"
    path.write_text(config)
    return path


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx-light")
    return found


class NginxUpstream:
    """nginx on 127.0.0.1:`port` with a generated config in `root`."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root / "nginx"
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxUpstream:
        self.root.mkdir(parents=True, exist_ok=True)
        config = write_config(self.root, self.port)
        binary = nginx_binary()
        command = [binary, "-p", str(self.root), "-c", str(config), "-e", str(self.root / "error.log")]
        subprocess.run([*command, "-t", "-q"], check=True)
        self.process = subprocess.Popen(command, start_new_session=True)
        wait_for_port(self.port, self.process)
        return self

    def pids(self) -> list[int]:
        return [] if self.process is None else [self.process.pid]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # nginx's fast shutdown
        deadline = time.monotonic() + 10
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
