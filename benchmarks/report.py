"""Markdown tables from a benchmark report, as pasted into docs/performance.md.

python benchmarks/report.py benchmarks/results/cpu.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def models_table(section: dict, reference: str) -> str:
    configurations = section
    throughput = next(
        k for k in next(iter(configurations.values())) if k.startswith("throughput_b") and k[-1].isdigit()
    )
    rows = []
    for name, entry in configurations.items():
        ratios = entry.get("ratios", {})
        rows.append(
            [
                f"`{name}`",
                f"{entry['params'] / 1e6:.2f}",
                f"{entry['flops'] / 1e9:.2f}",
                f"{entry['latency_ms_b1']:.1f} (min {entry['latency_ms_b1_min']:.1f})",
                f"{entry[throughput]:.1f}",
                f"{ratios.get('params', float('nan')):.3f}",
                f"{ratios.get('flops', float('nan')):.3f}",
                f"{ratios.get('latency_ms_b1', float('nan')):.3f}",
                f"{ratios.get(throughput, float('nan')):.2f}",
            ]
        )
    batch = throughput.removeprefix("throughput_b")
    header = [
        "configuration",
        "params (M)",
        "GFLOPs",
        "latency b1 ms, median",
        f"pairs/s b{batch}",
        "params ×",
        "FLOPs ×",
        "latency ×",
        "throughput ×",
    ]
    return _table(header, rows) + f"\n\n× = ratio to `{reference}`."


def attention_table(section: dict) -> str:
    rows = []
    for stage in section["stages"]:
        for name, entry in stage["implementations"].items():
            rows.append(
                [
                    f"{stage['tokens']} ({stage['primary_channels']}/{stage['auxiliary_channels']} ch)",
                    f"`{name}`" + (" (default)" if name == section["default"] else ""),
                    entry["key_tokens"],
                    f"{entry['median_ms']:.2f} (min {entry['min_ms']:.2f})",
                    f"{entry['peak_memory_mb']:.1f}",
                    f"{entry['max_abs_diff']:.1e}" + ("" if entry["exact"] else " (approx.)"),
                ]
            )
    header = [
        "tokens (primary/aux channels)",
        "implementation",
        "keys",
        "ms, median",
        "peak MiB",
        "max abs diff vs materialized",
    ]
    return (
        _table(header, rows)
        + f"\n\nBatch {section['batch']}, {section['precision']}; memory: {section['memory']}. "
        + section["conclusion"]
    )


def data_table(section: dict) -> str:
    rows = [
        [
            "decode + augment, one worker",
            section["pairs_per_s_raw"],
            section["pairs_per_s_cached"],
            section["speedup"],
        ],
        [
            "decode only, one worker",
            section["decode_only"]["pairs_per_s_raw"],
            section["decode_only"]["pairs_per_s_cached"],
            section["decode_only"]["speedup"],
        ],
    ]
    if "loader" in section:
        loader = section["loader"]
        rows.append(
            [
                f"DataLoader, {loader['raw']['workers']} workers",
                loader["raw"]["pairs_per_s"],
                loader["cached"]["pairs_per_s"],
                round(loader["cached"]["pairs_per_s"] / loader["raw"]["pairs_per_s"], 2),
            ]
        )
    table = _table(["path", "original JPEGs, pairs/s", "prepared cache, pairs/s", "cache ×"], rows)
    device = section["device"]
    return (
        f"{table}\n\nSource images {section['source_side']} px, {section['cases']} cases, augmentation "
        f"`{section['augmentation']}`; cache prepared in {section['prepare_s']} s. Batch augmentation of the "
        f"uint8 cache on `{device['device']}` (BatchAugmenter, batch {device['batch']}): "
        f"{device['pairs_per_s']} pairs/s."
    )


def training_table(section: dict) -> str:
    rows = []
    for name, modes in section["configurations"].items():
        for mode, entry in modes.items():
            rows.append(
                [
                    f"`{name}`",
                    mode,
                    entry["pairs_per_s"],
                    entry["step_ms"],
                    entry.get("compile_s", ""),
                    section["ratios"].get(f"{name}/{mode}", 1.0),
                ]
            )
    header = ["configuration", "mode", "pairs/s", "step ms, median", "compile s", "× baseline"]
    return (
        _table(header, rows)
        + f"\n\nBatch {section['batch']}, {section['img_size']} px, {section['precision']}."
    )


def peers_table(section: dict, reference: str = "ammfm-swin") -> str:
    """The peers section: every method with its input size, cost and ratios to ``reference``."""
    entries = {n: e for n, e in section.items() if isinstance(e, dict) and "ratios" in e}
    key = next(k for k in next(iter(entries.values())) if k.startswith("throughput_b") and k[12:].isdigit())
    batch = key.removeprefix("throughput_b")
    header = ["method", "px", "params (M)", "GFLOPs", "latency b1 (ms)", f"throughput b{batch} (pairs/s)"]
    header += ["params", "FLOPs", "latency", "throughput"]
    rows = []
    for name, entry in entries.items():
        r = entry["ratios"]
        rows.append(
            [
                f"`{name}`",
                entry["img_size"],
                f"{entry['params'] / 1e6:.2f}",
                f"{entry['flops'] / 1e9:.1f}",
                f"{entry['latency_ms_b1']:.0f}",
                f"{entry[key]:.1f}",
                f"{r['params']:.2f}",
                f"{r['flops']:.2f}",
                f"{r['latency_ms_b1']:.2f}",
                f"{r[key]:.2f}",
            ]
        )
    table = _table(header, rows) + f"\n\nThe last four columns are ratios to `{reference}`."
    missing = section.get("not_measured", {})
    if missing:
        table += " Not measured: " + ", ".join(f"`{name}` ({why})" for name, why in missing.items()) + "."
    return table


def render(report: dict, level: int = 3) -> str:
    environment = report["environment"]
    parts = [
        f"Device `{report['device']}`"
        + (f" ({environment['gpu']})" if "gpu" in environment else "")
        + f", CPU {environment['cpu']} × {environment['cpu_count']}, torch {environment['torch']}, "
        f"{'--quick, ' if report.get('quick') else ''}load average {environment['load_average_start'][0]:.1f} "
        f"at start, {environment.get('load_average_end', [float('nan')])[0]:.1f} at end."
    ]
    renderers = {
        "models": lambda section: models_table(section, report.get("models_reference", "baseline-swin")),
        "aab": attention_table,
        "data": data_table,
        "training": training_table,
        "compiled": training_table,
        "peers": lambda section: peers_table(section, report.get("peers_reference", "ammfm-swin")),
    }
    for section, render_section in renderers.items():
        if section in report and "error" not in report[section]:
            parts.append(f"{'#' * level} {section}\n\n{render_section(report[section])}")
        elif section in report:
            parts.append(f"{'#' * level} {section}\n\nfailed: {report[section]['error']}")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="markdown tables from a benchmarks/run.py report")
    parser.add_argument("report", type=Path)
    parser.add_argument("--level", type=int, default=3, help="markdown heading level of each section")
    args = parser.parse_args(argv)
    print(render(json.loads(args.report.read_text()), args.level))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
