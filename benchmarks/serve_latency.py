"""Latency of the demo page under concurrent clients: `python -m benchmarks.serve_latency`.

Starts the page (``mmfuse.gradio_app``) on 127.0.0.1 in this process, then ``--clients`` clients each send
``--requests`` image pairs through Gradio's client (upload, queue, prediction, Grad-CAM for every task,
attention maps, download of the result) at once. Prints p50/p90/p99/max of the per-request wall time
and writes them as JSON with ``--out``. The server computes one request at a time (its queue is
bounded), so a request's latency includes its wait in the queue.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch


def _model(spec: str):
    import mmfuse

    if spec == "tiny":
        torch.manual_seed(0)
        return mmfuse.build_model(
            "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=64
        )
    if spec.startswith("preset:"):  # full-size architecture, random weights: latency does not need training
        return mmfuse.build_model(spec.removeprefix("preset:"), pretrained=False)
    from mmfuse.runs import load_run_or_model

    return load_run_or_model(spec)


def measure(model, *, clients: int, requests: int, image_size: int = 512) -> dict:
    from gradio_client import Client, handle_file

    from mmfuse.gradio_app import build_app, example_pairs
    from mmfuse.gradio_server import launch

    folder = Path(tempfile.mkdtemp(prefix="mmfuse-serve-bench-"))
    pair = example_pairs(folder / "release")[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app(model, examples=[pair])
    launch(app, port=port, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        sessions = [Client(url, verbose=False) for _ in range(clients)]
        files = [handle_file(p) for p in pair]
        sessions[0].predict(*files, api_name="/classify")  # warm-up

        def client(session) -> list[float]:
            times = []
            for _ in range(requests):
                start = time.perf_counter()
                answer = session.predict(*files, api_name="/classify")
                times.append(time.perf_counter() - start)
                assert answer[0].startswith("Result ready"), answer[0]
            return times

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            seconds = np.array([t for times in pool.map(client, sessions) for t in times])
        wall = time.perf_counter() - started
    finally:
        app.close()
    return {
        "clients": clients,
        "requests_per_client": requests,
        "answered": int(seconds.size),
        "p50_s": float(np.percentile(seconds, 50)),
        "p90_s": float(np.percentile(seconds, 90)),
        "p99_s": float(np.percentile(seconds, 99)),
        "max_s": float(seconds.max()),
        "throughput_per_s": float(seconds.size / wall),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="tiny", help="'tiny', 'preset:NAME' (random weights) or a model/run dir"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    result = {
        "model": args.model,
        **measure(_model(args.model), clients=args.clients, requests=args.requests),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
