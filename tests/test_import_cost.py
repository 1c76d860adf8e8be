"""Heavy libraries that a plain serving run does not need stay unimported (they cost start-up time)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_a_serving_run_imports_no_scipy(tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / "scenarios" / "llama2_7b_chat_a100.yaml").read_text())
    spec["workloads"][0]["traffic"]["duration_s"] = 5
    spec["outputs"] = {"plots": False}
    scenario = tmp_path / "serving.yaml"
    scenario.write_text(yaml.safe_dump(spec))
    code = textwrap.dedent(
        f"""
        import sys
        from dcsim.cli import main
        status = main(["run", {str(scenario)!r}, "--json", "--out", {str(tmp_path / "out")!r}])
        heavy = sorted(name for name in ("scipy", "matplotlib") if name in sys.modules)
        print("HEAVY", heavy, status)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "HEAVY [] " in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
