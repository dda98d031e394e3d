"""The worst upload the demo page accepts, timed and its memory measured: `python -m benchmarks.serve_upload`.

Starts ``mmfuse serve`` in its own process, sends one small pair to warm it up, then the largest image
pair the page accepts (``--side`` x ``--side`` PNGs of a few hundred KB, under its 50 MP limit) through
Gradio's client, as a visitor would. Prints the request's wall time and the server's peak resident
memory (``VmHWM`` of ``/proc/PID/status``, Linux) before and after it, and writes them as JSON with
``--out``. The page makes its maps on a copy at most ``mmfuse.gradio_app.EXPLAIN_MAX_SIDE`` a side, so the
figures should not grow with ``--side`` beyond decoding the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def lesion_png(path: Path, side: int) -> Path:
    """A skin-coloured square with a dark disc: compresses to a small file whatever its pixel count."""
    pixels = np.full((side, side, 3), (214, 170, 140), np.uint8)
    y, x = np.ogrid[:side, :side]
    pixels[(x - side // 2) ** 2 + (y - side // 3) ** 2 < (side // 5) ** 2] = (80, 50, 40)
    Image.fromarray(pixels).save(path, optimize=False)
    return path


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _gallery_path(item) -> str:
    """A gallery item as Gradio's client returns it: ``{"image": path or {"path": ...}, "caption": ...}``."""
    image = item["image"] if isinstance(item, dict) else item[0]
    return image["path"] if isinstance(image, dict) else image


def _save_model(spec: str, folder: Path) -> str:
    if spec != "tiny":
        return spec
    import torch

    import mmfuse

    torch.manual_seed(0)
    mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=64
    ).save_pretrained(folder / "model")
    return str(folder / "model")


def measure(model: str, side: int) -> dict:
    from gradio_client import Client, handle_file

    from mmfuse.gradio_server import wait_until_up

    folder = Path(tempfile.mkdtemp(prefix="mmfuse-upload-bench-"))
    model = _save_model(model, folder)
    small = lesion_png(folder / "small.png", 256)
    huge = lesion_png(folder / f"huge-{side}.png", side)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mmfuse", "serve", model, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, timeout=300)
        client = Client(url, verbose=False)
        answer = client.predict(handle_file(str(small)), handle_file(str(small)), api_name="/classify")
        assert answer[0].startswith("Result ready"), answer[0]
        before = peak_rss_mb(server.pid)
        start = time.perf_counter()
        answer = client.predict(handle_file(str(huge)), handle_file(str(huge)), api_name="/classify")
        seconds = time.perf_counter() - start
        assert answer[0].startswith("Result ready"), answer[0]
        after = peak_rss_mb(server.pid)
        overlay_sides = sorted({max(Image.open(_gallery_path(item)).size) for item in answer[3]})
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        "upload": f"{side}x{side} PNG pair, {huge.stat().st_size / 1024:.0f} KB each",
        "request_s": round(seconds, 2),
        "server_peak_rss_before_mb": round(before, 1),
        "server_peak_rss_after_mb": round(after, 1),
        "overlay_longest_sides": overlay_sides,
        "torch_threads_env": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' or a model/run directory or Hub name")
    parser.add_argument("--side", type=int, default=7000, help="pixels a side of the uploaded pair")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    result = {"model": args.model, **measure(args.model, args.side)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
