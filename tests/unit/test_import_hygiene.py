"""Start-up stays light: --help, --version and pp never load boto3/kubernetes/scapy/textual; the engine never loads
textual; the product never loads the lab unless asked for it."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("textual", "boto3", "botocore", "kubernetes", "scapy")


def _modules_after(code: str) -> set[str]:
    script = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded_after(code: str) -> set[str]:
    return {m.split(".")[0] for m in _modules_after(code)}


def _cli(argv: list[str]) -> str:
    return (
        "import contextlib, io\nfrom ppdoctor.cli import main\n"
        f"buf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n"
        f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass\n"
    )


def test_help_version_and_pp_do_not_import_heavy_libraries():
    for argv in (["--help"], ["--version"], ["pp", "decode", "0d0a0d0a000d0a515549540a20000000"],
                 ["pp", "encode", "--src", "1.2.3.4:5", "--dst", "5.6.7.8:80"], ["lab", "list"], ["probe", "--list"],
                 ["pcap", "/nonexistent.pcap"]):
        loaded = _loaded_after(_cli(argv))
        assert not loaded & set(HEAVY), f"ppdoctor {' '.join(argv)} imported {sorted(loaded & set(HEAVY))}"


def test_engine_modules_never_import_textual():
    modules = [
        "ppdoctor.proxyproto", "ppdoctor.probes", "ppdoctor.probes.network", "ppdoctor.probes.aws",
        "ppdoctor.probes.kube", "ppdoctor.probes.envoy", "ppdoctor.probes.health", "ppdoctor.probes.syn",
        "ppdoctor.diagnosis", "ppdoctor.lab.world", "ppdoctor.lab.scenario", "ppdoctor.lab.nlb",
        "ppdoctor.lab.aws", "ppdoctor.lab.kubeapi", "ppdoctor.lab.gateway", "ppdoctor.lab.handle", "ppdoctor.echo",
        "ppdoctor.fixes", "ppdoctor.fixes.planner", "ppdoctor.fixes.apply", "ppdoctor.fixes.choose", "ppdoctor.report",
        "ppdoctor.session", "ppdoctor.bench", "ppdoctor.bench.runner", "ppdoctor.bench.engine", "ppdoctor.bench.cli",
        "ppdoctor.config",
        "ppdoctor.pcap", "ppdoctor.pcap.cli", "ppdoctor.lab.capture",
    ]
    loaded = _loaded_after("\n".join(f"import {m}" for m in modules))
    assert "textual" not in loaded
    assert "rich" not in loaded


def test_the_product_does_not_load_the_lab():
    # The lab is loaded by `ppdoctor lab …` and `ppdoctor --lab` only, so it could ship on its own.
    for code in ("import ppdoctor.app, ppdoctor.tui, ppdoctor.cli", "import ppdoctor.session, ppdoctor.fixes, ppdoctor.report",
                 "import ppdoctor.probes.network, ppdoctor.echo, ppdoctor.bench.runner",
                 _cli(["probe", "--list"]), _cli(["echo", "--help"])):
        lab = {m for m in _modules_after(code) if m == "ppdoctor.lab" or m.startswith("ppdoctor.lab.")}
        assert not lab, f"{code!r} loaded {sorted(lab)}"
