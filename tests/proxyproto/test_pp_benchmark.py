"""benchmarks/codec.py: its timing helper and the RESULTS.md section it rewrites."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "codec.py"


def load():
    if "ppdoctor_bench_codec" in sys.modules:
        return sys.modules["ppdoctor_bench_codec"]
    spec = importlib.util.spec_from_file_location("ppdoctor_bench_codec", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_write_section_keeps_other_sections(tmp_path: Path) -> None:
    bench = load()
    results = tmp_path / "RESULTS.md"
    bench.write_section(results, "## Codec\n\nfirst\n")
    assert results.read_text() == "# Benchmarks\n\n## Codec\n\nfirst\n"
    results.write_text("# Benchmarks\n\n## Lab\n\nlab numbers\n\n## Codec\n\nold\n\n## Probes\n\nprobe numbers\n")
    bench.write_section(results, "## Codec\n\nnew\n")
    assert results.read_text() == (
        "# Benchmarks\n\n## Lab\n\nlab numbers\n\n## Codec\n\nnew\n\n## Probes\n\nprobe numbers\n"
    )
    results.write_text("# Benchmarks\n\n## Lab\n\nlab numbers\n")
    bench.write_section(results, "## Codec\n\nnew\n")
    assert results.read_text() == "# Benchmarks\n\n## Lab\n\nlab numbers\n\n## Codec\n\nnew\n"


def test_contenders_agree_and_timing_helper_runs() -> None:
    bench = load()
    for case in bench.CASES:
        bench.check_agreement(case, case.ppdoctor_bytes())
    rates = bench.ops_per_second({"noop": (len, b"x")}, repeat=1, min_time=0.001)
    assert rates["noop"] > 0
