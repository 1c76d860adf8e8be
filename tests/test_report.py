"""`dcsim report`: one self-contained, well-formed HTML page of a run folder or a sweep results file."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import yaml

import dcsim
from dcsim.cli import main
from dcsim.report import build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Audit(HTMLParser):
    """Checks tags balance (void elements aside) and collects images and links."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "img":
            self.images.append(values)
        for name in ("src", "href"):
            link = values.get(name) or ""
            if link and not link.startswith("data:"):
                self.external.append(link)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def audit(text: str) -> Audit:
    checker = Audit()
    checker.feed(text)
    checker.close()
    assert not checker.problems and not checker.stack, (checker.problems, checker.stack)
    assert not checker.external, f"the page must be readable offline: {checker.external}"
    ET.fromstring(text.split("\n", 1)[1])  # also well-formed XML (after the doctype line)
    return checker


def decoded(image) -> bytes:
    prefix = "data:image/png;base64,"
    assert image["src"].startswith(prefix)
    return base64.b64decode(image["src"][len(prefix) :])


def test_run_report_embeds_every_plot_and_the_figures(tmp_path, base, capsys):
    base["workloads"][0]["synthetic"]["count"] = 20
    out = tmp_path / "run"
    dcsim.run_scenario(base).write(out, plots=True)
    plots = [out / "plots" / name for name in ("utilization.png", "jct_cdf.png", "queue_length.png")]
    assert sorted(plots) == sorted((out / "plots").glob("*.png"))
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report written to {out / 'report.html'}"
    text = (out / "report.html").read_text()
    checker = audit(text)
    embedded = [decoded(image) for image in checker.images]
    assert embedded == [path.read_bytes() for path in plots]  # every plot, byte for byte, utilization first
    assert {image["alt"] for image in checker.images} == {f"plots/{path.name}" for path in plots}
    for text_expected in ("workload w", "jct_s.p50", "cost_usd.total", "table jobs.csv (20 rows)"):
        assert text_expected in text


def test_sweep_report_plots_means_and_lists_failures(tmp_path, base):
    base["workloads"][0]["synthetic"]["count"] = 12
    frame = dcsim.sweep(
        base,
        grid={"workloads[0].synthetic.rate_per_h": [2, 6], "datacenter.nodes[0].count": [0, 1, 2]},
        seeds=2,
        workers=1,
        cache_dir=None,
    )
    results = tmp_path / "sweep.csv"
    frame.to_csv(results, index=False)
    out = tmp_path / "page.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    checker = audit(text)
    assert checker.images and all(decoded(image).startswith(PNG_MAGIC) for image in checker.images)
    assert "datacenter.cost_usd.total against workloads[0].synthetic.rate_per_h" in text
    assert "failed points (4)" in text and "must be &gt;= 1 (got 0)" in text
    assert "12 points: 6 variants x 2 seeds; 4 failed" in text


def test_report_of_a_parquet_sweep(tmp_path, base):
    pytest.importorskip("pyarrow")
    base["workloads"][0]["synthetic"]["count"] = 12
    frame = dcsim.sweep(base, grid={"scheduler.policy": ["fifo", "sjf"]}, workers=1, cache_dir=None)
    frame.to_parquet(tmp_path / "s.parquet", index=False)
    audit(build_report(tmp_path / "s.parquet"))


def test_report_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert (
        capsys.readouterr().err.strip().endswith("not found (give a dcsim run output folder or a sweep results file)")
    )
    assert main(["report", str(tmp_path)]) == 2
    assert "no summary.json here" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text(yaml.safe_dump({"a": 1}))
    assert main(["report", str(tmp_path / "t.csv")]) == 2
    assert "not a dcsim sweep results table" in capsys.readouterr().err
