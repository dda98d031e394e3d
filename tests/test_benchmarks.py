"""The benchmark suite's code on tiny configurations: the report's shape and the figures' consistency.

Timings are never asserted (speed is what the benchmarks measure, on a quiet machine); what is checked
is what a reader of ``benchmarks/results/*.json`` relies on: every section and key is there, ratios are
computed against the reference, exact attention implementations agree, pooled ones are marked.
"""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import attention, models, peers, report, run, training
from benchmarks.memory import peak_bytes
from benchmarks.timing import Settings, interleaved
from mmfuse import build_model

CPU = Settings(torch.device("cpu"), quick=True)
TINY = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 64}


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return {
        "tiny-ammfm": build_model("ammfm-swin", **TINY),
        "tiny-baseline": build_model(
            "baseline-swin", primary="test_convnext", auxiliary="test_convnext", img_size=64
        ),
    }


def test_interleaved_alternates_order_and_times_every_block():
    calls = []
    seconds = interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        device=torch.device("cpu"),
        warmup=1,
        rounds=3,
        block=2,
    )
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] + ["b", "b", "a", "a"] + ["a", "a", "b", "b"]
    assert {name: len(times) for name, times in seconds.items()} == {"a": 3, "b": 3}


def test_peak_memory_sees_tensor_allocations_on_cpu():
    def allocate_then_free():
        big = torch.empty(1 << 20, dtype=torch.float32)  # 4 MiB
        del big
        return torch.empty(1 << 18, dtype=torch.float32)  # 1 MiB

    peak = peak_bytes(allocate_then_free, torch.device("cpu"))
    assert 4 << 20 <= peak < 5 << 20


def test_models_section_reports_every_figure_and_ratios_to_the_reference(tiny_models):
    section = models.run(CPU, tiny_models, reference="tiny-baseline", throughput_batch=2, img_size=64)
    assert set(section) == set(tiny_models)
    ammfm, baseline = section["tiny-ammfm"], section["tiny-baseline"]
    for entry in (ammfm, baseline):
        assert entry["params"] > 0 and entry["flops"] > 0
        assert entry["latency_ms_b1"] > 0 and entry["throughput_b2"] > 0
    assert baseline["ratios"] == {"params": 1.0, "flops": 1.0, "latency_ms_b1": 1.0, "throughput_b2": 1.0}
    assert ammfm["ratios"]["params"] == pytest.approx(ammfm["params"] / baseline["params"], rel=1e-3)
    # The attention's matrix products are counted whichever kernel ran.
    assert ammfm["flops"] >= ammfm["flops_as_run"] > 0
    table = report.models_table(section, "tiny-baseline")
    assert "| `tiny-ammfm` |" in table and "ratio to `tiny-baseline`" in table


def test_peers_section_measures_metadata_models_at_their_own_size(tiny_models):
    tiny_peer = build_model(
        "incep-com",
        primary="test_convnext",
        auxiliary="test_convnext",
        img_size=48,
        metadata_encoder="identity",
    )
    section = peers.run(
        CPU,
        {"tiny-ammfm": tiny_models["tiny-ammfm"], "tiny-incep": tiny_peer},
        reference="tiny-ammfm",
        throughput_batch=2,
    )
    assert section["tiny-incep"]["img_size"] == 48 and section["tiny-ammfm"]["img_size"] == 64
    assert section["tiny-ammfm"]["ratios"]["params"] == 1.0
    assert set(section["not_measured"]) == {"ammfm-swin", "ammfm-swin-fast", *peers.PEERS}
    table = report.peers_table(section, "tiny-ammfm")
    assert "| `tiny-incep` | 48 |" in table and "ratios to `tiny-ammfm`" in table


def test_attention_section_marks_exact_and_pooled_implementations():
    stage = {
        "stage": 0,
        "reduction": 4,
        "tokens": 256,
        "side": 16,
        "primary_channels": 8,
        "auxiliary_channels": 4,
    }
    section = attention.run(CPU, batch=1, stages=[stage])
    implementations = section["stages"][0]["implementations"]
    assert set(implementations) == set(attention.VARIANTS)
    for name in ("materialized", "sdpa", "chunked"):
        assert implementations[name]["exact"] and implementations[name]["key_tokens"] == 256
        assert implementations[name]["max_abs_diff"] < 1e-4
    pooled = implementations["sdpa-pool196"]
    assert not pooled["exact"] and pooled["key_tokens"] == 64
    assert pooled["attention_flops"] == implementations["sdpa"]["attention_flops"] // 4
    assert all(v["peak_memory_mb"] > 0 for v in implementations.values())
    assert section["default"] in attention.VARIANTS  # the aab block's defaults are one of the variants
    assert section["default"] in section["conclusion"]
    assert f"`{section['default']}` (default)" in report.attention_table(section)


def test_training_section_measures_both_configurations_eagerly(tiny_models):
    section = training.run(CPU, tiny_models, batch=2, compile=False, reference="tiny-baseline", img_size=64)
    assert set(section["configurations"]) == set(tiny_models)
    assert all(entry["eager"]["pairs_per_s"] > 0 for entry in section["configurations"].values())
    assert set(section["ratios"]) == {"tiny-ammfm/eager"}
    assert "| `tiny-baseline` | eager |" in report.training_table(section)


def test_report_is_written_atomically_and_headline_quotes_the_budget(tmp_path):
    report = {
        "device": "cpu",
        "models": {"ammfm-swin": {"ratios": {"params": 0.57, "flops": 0.53, "latency_ms_b1": 0.58}}},
        "data": {"speedup": 3.0},
    }
    path = tmp_path / "results" / "cpu.json"
    run.write(report, path)
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["cpu.json"]
    headline = run.headline(report)
    assert "FLOPs 0.530" in headline and "latency b1 0.580" in headline and "3.00x" in headline


def test_compiling_is_measured_by_default_on_cuda_only():
    assert "compiled" not in run.parse_args([]).sections
    assert "compiled" in run.parse_args(["--device", "cuda"]).sections


def test_unknown_section_is_an_error_naming_the_choices(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--sections", "models,speed"])
    assert "models, aab, data, training, compiled" in capsys.readouterr().err


def test_data_section_reads_the_same_split_from_jpegs_and_from_the_prepared_cache():
    from benchmarks import data_path

    section = data_path.run(CPU, cases=12, side=64, reads=4, workers=0)
    assert section["pairs_per_s_raw"] > 0 and section["pairs_per_s_cached"] > 0
    assert section["speedup"] == pytest.approx(
        section["pairs_per_s_cached"] / section["pairs_per_s_raw"], rel=0.01
    )
    assert section["raw"]["pairs"] == 4 and section["cached"]["pairs"] == 16
    assert section["device"]["pairs_per_s"] > 0 and "loader" not in section
    assert "decode + augment, one worker" in report.data_table(section)


def test_evaluation_section_times_intervals_and_comparison():
    from benchmarks import evaluation

    section = evaluation.run(CPU, cases=40, resamples=50)
    assert section["cases"] == 40 and section["resamples"] == 50
    for key in ("seconds_metrics", "seconds_metrics_with_intervals", "seconds_compare"):
        assert section[key] > 0
    assert "bootstrap resamples of 40 cases" in run.headline({"evaluation": section})
