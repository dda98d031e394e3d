"""Serving the Gradio page (:mod:`mmfuse.gradio_app`) on this machine, as ``mmfuse serve`` does.

:func:`launch` starts it with a bounded queue, after checking that it can listen where asked
(:func:`check_listen_address`), so a bad host, port or upload limit is a :class:`UsageError` naming the
value instead of a Gradio traceback. (A Hugging Face Space launches the page its own way: :mod:`mmfuse.space`.)
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import time
from collections.abc import Callable

from mmfuse.errors import UsageError
from mmfuse.gradio_app import MAX_UPLOAD_MB, example_files

log = logging.getLogger(__name__)


def launch(
    app,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = MAX_UPLOAD_MB,
    block: bool = True,
    on_ready: Callable[[str], None] | None = None,
) -> str:
    """Start ``app`` with a bounded queue (one request computes at a time, 64 may wait); return its URL.

    The only local files it serves besides uploads and its outputs are the example images themselves
    (:func:`example_files`). A host, port or upload limit it cannot use is a :class:`UsageError`
    naming the value, raised before Gradio starts; a port taken between that check and the bind is
    named the same way (Gradio's own message points at its ``GRADIO_SERVER_PORT`` variable).
    ``on_ready(url)`` is called once the server listens, so an announcement never names a port
    that is not bound yet.
    """
    import gradio as gr

    upload_bytes = _upload_bytes(max_upload_mb)
    check_listen_address(host, port)
    app.queue(default_concurrency_limit=1, max_size=64)
    _log_refused_paths(app, gr)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            max_file_size=upload_bytes,
            allowed_paths=example_files(getattr(app, "mmfuse_examples", None)),
            ssr_mode=False,
            share=False,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as exc:
        if "Cannot find empty port" not in str(exc):
            raise
        raise _port_in_use(host, port) from None
    url = f"http://{f'[{host}]' if ':' in host else host}:{app.server_port}"  # an IPv6 address in brackets
    if on_ready is not None:
        on_ready(url)
    if block:
        app.block_thread()
    return url


def _port_in_use(host: str, port: int) -> UsageError:
    return UsageError(f"port {port} on host {host!r} is in use; choose another --port")


def _upload_bytes(max_upload_mb: float) -> int:
    """Gradio takes an ``int`` of bytes or ``"<int>mb"``: ``f"{20.0}mb"`` is neither."""
    if isinstance(max_upload_mb, bool) or not isinstance(max_upload_mb, (int, float)):
        raise UsageError(f"max_upload_mb must be a number of MiB, got {max_upload_mb!r}")
    if not math.isfinite(max_upload_mb) or max_upload_mb <= 0:
        raise UsageError(f"max_upload_mb must be a finite number above 0, got {max_upload_mb!r}")
    return max(1, int(max_upload_mb * 1024 * 1024))


def check_listen_address(host: str, port: int) -> None:
    """Raise :class:`UsageError` naming ``host`` or ``port`` unless the server could listen there.

    Gradio answers any failure to bind with "Cannot find empty port", even for a host that is not an
    address of this machine.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"port must be a whole number from 1 to 65535, got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(
            f"cannot serve on host {host!r}: not an address or name of this machine ({reason})"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _port_in_use(host, port) from None
            raise UsageError(
                f"cannot serve on host {host!r}, port {port}: {exc.strerror or exc} "
                "(use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0)"
            ) from None


def _log_refused_paths(app, gr) -> None:
    """A request naming a file it may not read is logged in one line, not with Gradio's traceback.

    Gradio refuses such a file (e.g. ``{"path": "/etc/passwd"}`` in an API call) while preparing the
    inputs and prints the whole traceback of its ``InvalidPathError``; one line per refusal keeps the
    log readable when someone probes the page. The visitor gets the same refusal as before.
    """
    from gradio.exceptions import InvalidPathError

    original = app.preprocess_data

    async def preprocess_data(*args, **kwargs):
        try:
            return await original(*args, **kwargs)
        except InvalidPathError as exc:
            log.warning("refused a request for a file it may not read: %s", exc)
            error = gr.Error(f"refused: {exc}")
            error.print_exception = False
            raise error from None

    app.preprocess_data = preprocess_data


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (used by tests and the latency benchmark)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
