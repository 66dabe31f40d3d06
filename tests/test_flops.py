"""FLOPs counted at export (export/metadata.py), the host's matmul peak (devices/system_info.py) and the
achieved GFLOP/s the latency report shows beside it (devices/report.py)."""
from __future__ import annotations

import torch
from torch import nn

from devices.report import add_achieved_gflops, render_markdown
from devices.system_info import matmul_peak
from export.metadata import flops_per_sample


def test_a_single_linear_layer_costs_2_m_n_k():
    m, k, n = 3, 16, 8
    assert flops_per_sample(nn.Linear(k, n), torch.zeros(m, k)) == 2 * m * n * k


class Attention(nn.Module):
    def forward(self, x):  # x: (batch, heads, tokens, dim)
        return nn.functional.scaled_dot_product_attention(x, x, x)


def test_attention_is_counted_even_where_the_fused_cpu_kernel_would_run():
    batch, heads, tokens, dim = 1, 2, 5, 4
    flops = flops_per_sample(Attention(), torch.zeros(batch, heads, tokens, dim))
    assert flops == 2 * (2 * batch * heads * tokens * tokens * dim)  # q @ k^T, then weights @ v


def test_a_tiny_network_has_a_positive_count():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    assert flops_per_sample(model, torch.zeros(1, 1, 8, 8)) > 0


def test_the_matmul_peak_is_a_positive_rate_labelled_with_its_threads():
    peak = matmul_peak(size=64, seconds=0.0)
    assert peak["gflops_per_s"] > 0 and peak["runs"] >= 3 and peak["size"] == 64 and peak["dtype"] == "float32"
    assert peak["threads"] is None or peak["threads"] >= 1


def _row(model, batch, throughput, runtime="onnxruntime"):
    return {"model": model, "runtime": runtime, "target": "cpu", "precision": "fp32", "task": "digits", "batch": batch,
            "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "mean_ms": 1.0, "throughput": throughput, "iterations": 10}


def test_achieved_gflops_at_the_largest_batch_beside_the_peak():
    report = {"profile": "cpu-x86", "status": "measured", "host": {
        "cpu_model": "test CPU", "matmul_peak": {"gflops_per_s": 100.0, "size": 1024, "dtype": "float32", "threads": 2}},
        "rows": [_row("digits/mae/model.onnx", 1, 500.0), _row("digits/mae/model.onnx", 8, 2000.0),
                 _row("other/model.onnx", 1, 100.0)]}
    add_achieved_gflops(report, lambda row: 25_000_000 if row["model"].startswith("digits/") else None)
    small, large, unknown = report["rows"]
    assert "gflops_per_s" not in small and "gflops_per_s" not in unknown  # a smaller batch; no FLOPs count
    assert large["flops_per_sample"] == 25_000_000 and large["gflops_per_s"] == 25_000_000 * 2000.0 / 1e9
    text = render_markdown(report)
    assert "float32 matmul peak 100.0 GFLOP/s (numpy 1024x1024, 2 threads)" in text
    assert "| `digits/mae/model.onnx` | onnxruntime | fp32 | 8 | 25.0 | 50.00 | 50.0% |" in text


def test_only_batch_1_measured_gives_the_rate_at_batch_1():
    report = {"profile": "p", "rows": [_row("a/b/model.onnx", 1, 400.0)]}
    add_achieved_gflops(report, lambda row: 10**6)
    assert report["rows"][0]["gflops_per_s"] == 0.4
    assert "no measured matmul peak" in render_markdown(report)
