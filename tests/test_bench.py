"""benchmarks/bench.py drives the API end to end and keeps its table and JSON format."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_bench_measures_batched_through_the_api_and_keeps_other_rows(tmp_path):
    out = tmp_path / "results.json"
    kept = {"backend": "nest", "dataset": "mnist", "neurons": 1, "synapses": 2,
            "build_s": 3.0, "measured": {"date": "2026-01-01", "command": "earlier"}}
    out.write_text(json.dumps({"rows": [kept]}))
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--backends", "batched",
         "--datasets", "digits", "--images", "10", "--patches", "50", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| backend | dataset | neurons | synapses | conn_list_s |")
    assert any(line.startswith("| batched | digits | 1,280 |") for line in lines)
    record = json.loads(out.read_text())
    assert record["images"] == 10 and record["patches"] == 50
    rows = {(row["backend"], row["dataset"]): row for row in record["rows"]}
    assert rows[("nest", "mnist")] == kept
    batched = rows[("batched", "digits")]
    assert batched["neurons"] == 1280 and batched["synapses"] > 0
    assert batched["stdp_patch_s"] > 0 and batched["features_img_s"] > 0
    assert batched["features_images"] == 360  # every digits test image, in parallel blocks
