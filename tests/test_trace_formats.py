"""Trace converters (Philly, Helios, PAI): the sample files convert to hand-computed jobs, the output reads
back with read_job_trace, malformed input gives one located line, and `dcsim trace convert` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dcsim.cli import main
from dcsim.errors import UserInputError
from dcsim.workloads.jobs import read_job_trace
from dcsim.workloads.trace_formats import (
    TRACE_FORMATS,
    TraceFormat,
    convert_helios,
    convert_pai,
    convert_philly,
    register_trace_format,
    write_dcsim_trace,
)

TRACES = Path(__file__).resolve().parent.parent / "scenarios" / "traces"
APP = "application_1506638472019_"

# (job_id, submit_s, gpus, duration_s), worked out by hand from the sample files
PHILLY = [
    (APP + "10238", 0, 1, 2473),  # 00:47:53 is the earliest submission; 00:47:54 -> 01:29:07
    (APP + "10243", 257, 8, 19105),  # 00:52:15 -> 06:10:40
    (APP + "10251", 1029, 4, 6085),  # Killed, ran 01:20:33 -> 03:01:58
    (APP + "10257", 1371, 2, 90 + 105 + 285),  # Failed after three attempts: their run times add up
    (APP + "10262", 2606, 16, 44026),  # two machines of 8 GPUs; 01:31:25 -> 13:45:11
    (APP + "10281", 7237, 1, 3420),  # listed after 10290 in the file, submitted before it
    (APP + "10290", 8702, 2, 7200),
    (APP + "10302", 10345, 4, 41),  # Failed after 41 s
]
HELIOS = [
    ("4237901", 0, 8, 8010),
    ("4237915", 213, 1, 1288),
    ("4237930", 587, 16, 150),  # FAILED
    ("4237948", 1282, 4, 9000),  # CANCELLED after running 2.5 h
    ("4237960", 1837, 1, 86404),  # TIMEOUT after a day and 4 s
    ("4237977", 3725, 8, 6510),
    ("4237983", 4492, 32, 28800),
    ("4237990", 6011, 1, 60),
    ("4238004", 7525, 2, 2677),  # NODE_FAIL
    ("4238011", 8992, 4, 3600),
]
PAI = [
    ("4b3f04b66a525d2df903eb16", 0, 1, 3884),
    ("a9c2e1f07d3b58e4c6a1f902", 360, 4, 7195),  # CPU ps tasks add no GPU; 4 workers x 100%
    ("0c7e5d2a9b4f16e3d8a2c715", 512, 1, 360),  # Failed; 50% of one GPU rounds up to 1
    ("3d8f1a6c0e9b27d45c2e8a1f", 1800, 9, 28870),  # 8 x 100% + ceil(1 x 25%); first start -> last end
    ("71c9e2b5a0d84f3e6b1a8c5d", 3015, 2, 7200),  # one instance at 200%
    ("8e4b1f7c3a0d59e2c6b8a1d4", 3600, 2, 60),  # Failed; ceil(3 x 60%) = 2
    ("d0a6c3e8b2f1754a9e1c6b0d", 4200, 1, 1200),
    ("b5e0d3a8c1f947e2a6b9d0c3", 4950, 16, 36000),  # listed before two earlier submissions
]


def rows(frame: pd.DataFrame) -> list[tuple[str, float, int, float]]:
    return list(zip(frame.job_id, frame.submit_s, frame.gpus, frame.duration_s, strict=True))


def message(excinfo: pytest.ExceptionInfo[UserInputError]) -> str:
    (problem,) = excinfo.value.problems
    return str(problem)


def test_philly_sample():
    frame = convert_philly(TRACES / "philly_sample.json")
    assert rows(frame) == PHILLY
    assert list(frame.columns) == ["job_id", "submit_s", "gpus", "duration_s", "user"]
    assert frame.user.tolist()[:2] == ["b52e98", "9b5c5a"]
    # 10270 was killed before any attempt, 10309 was still running at the end, 10275 listed no GPUs
    assert frame.attrs["dropped"] == {"no GPUs": [APP + "10275"], "no run time": [APP + "10270", APP + "10309"]}


def test_helios_sample():
    frame = convert_helios(TRACES / "helios_sample.csv")
    assert rows(frame) == HELIOS
    assert frame.attrs["dropped"] == {"no GPUs": ["4237922"], "no run time": ["4237951"]}


def test_pai_sample_with_and_without_gpu_types():
    frame = convert_pai(TRACES / "pai_job_sample.csv")  # finds pai_task_sample.csv beside it
    assert rows(frame) == PAI
    assert "accelerator" not in frame.columns
    assert frame.attrs["dropped"] == {
        "no GPUs": ["e61b9a0d4c7f2e85a3d1b6c9"],  # CPU-only
        "no run time": ["f2a7c4e9b1d03f8a6e5c2b71"],  # Running, no end time
    }
    pinned = convert_pai(
        TRACES / "pai_job_sample.csv", TRACES / "pai_task_sample.csv", {"T4": "t4", "V100M32": "v100-sxm-32gb"}
    )
    assert pinned.accelerator.tolist() == ["", "", "t4", "v100-sxm-32gb", "", "t4", "", ""]


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("philly", "philly_sample.json", PHILLY),
        ("helios", "helios_sample.csv", HELIOS),
        ("pai", "pai_job_sample.csv", PAI),
    ],
)
def test_stored_conversion_is_current_and_reads_back(name, source, expected, tmp_path):
    frame = TRACE_FORMATS[name].convert(TRACES / source)
    write_dcsim_trace(frame, tmp_path / "out.csv")
    stored = TRACES / f"{name}_converted.csv"
    assert (tmp_path / "out.csv").read_text() == stored.read_text()
    jobs = read_job_trace(stored, name)
    assert [(j.job_id, j.submit_s, j.gpus, j.duration_s) for j in jobs] == expected
    assert all(j.user and j.accelerator is None for j in jobs)


def test_pinned_pai_trace_reads_back(tmp_path):
    frame = convert_pai(TRACES / "pai_job_sample.csv", gpu_types={"T4": "t4"})
    write_dcsim_trace(frame, tmp_path / "pai.csv")
    jobs = read_job_trace(tmp_path / "pai.csv", "pai")
    assert [j.accelerator for j in jobs] == [None, None, "t4", None, None, "t4", None, None]


def test_registry_rejects_a_duplicate_name():
    with pytest.raises(ValueError, match="trace format 'pai' is already registered"):
        register_trace_format("pai")(type("OtherPai", (TraceFormat,), {}))


def test_writer_needs_the_required_columns(tmp_path):
    with pytest.raises(ValueError, match="frame lacks dcsim trace columns gpus, duration_s"):
        write_dcsim_trace(pd.DataFrame({"job_id": ["a"], "submit_s": [0.0]}), tmp_path / "x.csv")


def philly_job(**overrides):
    job = {
        "status": "Pass",
        "vc": "v",
        "jobid": "app_1",
        "submitted_time": "2017-10-07 00:00:00",
        "user": "u",
        "attempts": [
            {
                "start_time": "2017-10-07 00:00:10",
                "end_time": "2017-10-07 00:01:10",
                "detail": [{"ip": "m1", "gpus": ["gpu0"]}],
            }
        ],
    }
    job.update(overrides)
    return job


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"jobid": "a",}]', "bad.json line 1: not valid JSON (Expecting property name enclosed in double quotes)"),
        ('{"jobid": "a"}', "bad.json: must be a JSON list of jobs (the Philly cluster_job_log)"),
        (
            [philly_job(), philly_job(jobid="app_2", submitted_time="2017/10/07 00:00")],
            "bad.json job[1].submitted_time: must be a time YYYY-MM-DD HH:MM:SS (got '2017/10/07 00:00')",
        ),
        (
            [philly_job(attempts=[{"start_time": "2017-10-07 00:02:00", "end_time": "2017-10-07 00:01:00"}])],
            "bad.json job[0].attempts[0]: end time precedes start time",
        ),
        (
            [philly_job(attempts=[{"start_time": "None", "end_time": "None", "detail": [{"ip": "m1"}]}])],
            "bad.json job[0].attempts[0].detail[0].gpus: must be a list of GPU names",
        ),
        ([philly_job(), philly_job()], "bad.json job[1].jobid: duplicate job id 'app_1'"),
        ([philly_job(jobid="")], "bad.json job[0].jobid: must be a non-empty string"),
        ([philly_job(attempts=[])], "bad.json: no job in the trace used GPUs for a positive time"),
    ],
    ids=[
        "bad-json",
        "not-a-list",
        "bad-time",
        "end-before-start",
        "no-gpu-list",
        "duplicate",
        "empty-id",
        "nothing-replayable",
    ],
)
def test_philly_errors(content, expected, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(UserInputError) as excinfo:
        convert_philly(path)
    assert message(excinfo) == expected


HELIOS_HEADER = "job_id,user,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration,queue\n"
HELIOS_ROW = "1,u,2,8,1,COMPLETED,2020-04-01 00:00:00,2020-04-01 00:00:05,2020-04-01 00:10:05,600,vc\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("job_id,user,gpus,submit_time,duration\n", "bad.csv line 1: Helios header lacks columns gpu_num"),
        (
            "job_id,gpu_num,submit_time\n",
            "bad.csv line 1: Helios header lacks columns duration (or start_time and end_time)",
        ),
        (
            HELIOS_HEADER + HELIOS_ROW + HELIOS_ROW.replace(",2,8", ",two,8"),
            "bad.csv line 3.gpu_num: must be a number (got 'two')",
        ),
        (
            HELIOS_HEADER + HELIOS_ROW.replace(",2,8", ",1.5,8"),
            "bad.csv line 2.gpu_num: must be a whole number (got '1.5')",
        ),
        (
            HELIOS_HEADER + HELIOS_ROW.replace(",600,", ",-1,"),
            "bad.csv line 2.duration: must be a number >= 0 (got '-1')",
        ),
        (
            HELIOS_HEADER + HELIOS_ROW.replace("2020-04-01 00:00:00", "yesterday"),
            "bad.csv line 2.submit_time: must be a time YYYY-MM-DD HH:MM:SS (got 'yesterday')",
        ),
        (HELIOS_HEADER + HELIOS_ROW + HELIOS_ROW, "bad.csv line 3.job_id: duplicate job id '1'"),
        (
            HELIOS_HEADER + HELIOS_ROW.replace(",600,", ",,").replace("00:10:05", "00:00:01"),
            "bad.csv line 2.end_time: end time precedes start time",
        ),
    ],
    ids=[
        "missing-gpu_num",
        "no-duration",
        "gpu-not-number",
        "fractional-gpu",
        "negative-duration",
        "bad-time",
        "duplicate",
        "end-before-start",
    ],
)
def test_helios_errors(content, expected, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserInputError) as excinfo:
        convert_helios(path)
    assert message(excinfo) == expected


def test_philly_gpus_come_from_the_last_attempt_that_lists_any(tmp_path):
    two = {
        "start_time": "2017-10-07 00:00:10",
        "end_time": "2017-10-07 00:01:10",
        "detail": [{"ip": "m", "gpus": ["gpu0", "gpu1"]}],
    }
    one = {**two, "detail": [{"ip": "m", "gpus": ["gpu3"]}]}
    empty = {"start_time": "2017-10-07 00:02:00", "end_time": "2017-10-07 00:02:30", "detail": []}
    path = tmp_path / "p.json"
    path.write_text(json.dumps([philly_job(attempts=[two, one, empty])]))
    assert rows(convert_philly(path)) == [("app_1", 0, 1, 60 + 60 + 30)]


def test_helios_duration_falls_back_to_end_minus_start(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(HELIOS_HEADER + HELIOS_ROW.replace(",600,", ",,"))
    assert rows(convert_helios(path)) == [("1", 0, 2, 600)]


def write_pai(tmp_path, jobs: str, tasks: str) -> Path:
    (tmp_path / "pai_task_table.csv").write_text(tasks)
    path = tmp_path / "pai_job_table.csv"
    path.write_text(jobs)
    return path


PAI_JOB = "j1,i1,u1,Terminated,100,500\n"
PAI_TASK = "j1,worker,2,Terminated,110,410,600,29.3,100,V100\n"


def test_pai_header_row_and_unknown_task_jobs(tmp_path):
    jobs = ",".join(("job_name", "inst_id", "user", "status", "start_time", "end_time")) + "\n" + PAI_JOB
    path = write_pai(tmp_path, jobs, PAI_TASK + "other,worker,1,Terminated,0,9,600,29.3,100,V100\n")
    assert rows(convert_pai(path)) == [("j1", 0, 2, 300)]


@pytest.mark.parametrize(
    ("jobs", "tasks", "expected"),
    [
        (
            "j1,i1,u1,Terminated,100\n",
            PAI_TASK,
            "pai_job_table.csv line 1: expected 6 columns job_name,inst_id,user,status,start_time,end_time (got 5)",
        ),
        (
            PAI_JOB,
            PAI_TASK.replace(",100,V100", ",lots,V100"),
            "pai_task_table.csv line 1.plan_gpu: must be a number (got 'lots')",
        ),
        (
            PAI_JOB,
            PAI_TASK.replace(",2,", ",2.5,"),
            "pai_task_table.csv line 1.inst_num: must be a whole number (got '2.5')",
        ),
        (
            PAI_JOB,
            PAI_TASK.replace("110,410", "410,110"),
            "pai_task_table.csv line 1.end_time: end time precedes start time",
        ),
        (
            PAI_JOB.replace(",100,", ",,"),
            PAI_TASK,
            "pai_job_table.csv line 1.start_time: is missing (the job's submission time)",
        ),
    ],
    ids=["short-row", "bad-plan_gpu", "fractional-inst_num", "end-before-start", "no-submit"],
)
def test_pai_errors(jobs, tasks, expected, tmp_path):
    with pytest.raises(UserInputError) as excinfo:
        convert_pai(write_pai(tmp_path, jobs, tasks))
    assert message(excinfo) == expected


def test_pai_task_table_must_exist(tmp_path):
    path = tmp_path / "pai_job_table.csv"
    path.write_text(PAI_JOB)
    with pytest.raises(UserInputError) as excinfo:
        convert_pai(path)
    assert message(excinfo) == f"{tmp_path / 'pai_task_table.csv'}: trace file not found"


def test_cli_converts(tmp_path, capsys):
    out = tmp_path / "pai.csv"
    argv = ["trace", "convert", "--format", "pai", str(TRACES / "pai_job_sample.csv"), "-o", str(out)]
    assert main([*argv, "--task-table", str(TRACES / "pai_task_sample.csv"), "--gpu-type", "T4=t4"]) == 0
    assert capsys.readouterr().out == f"wrote 8 jobs to {out} (dropped 1 with no run time, 1 with no GPUs)\n"
    assert pd.read_csv(out).accelerator.fillna("").tolist() == ["", "", "t4", "", "", "t4", "", ""]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--format", "helios", str(TRACES / "philly_sample.json")], "philly_sample.json line 1: Helios header lacks"),
        (["--format", "philly", str(TRACES / "missing.json")], "missing.json: trace file not found"),
        (
            ["--format", "philly", str(TRACES / "philly_sample.json"), "--task-table", "t.csv"],
            "apply to --format pai only",
        ),
        (
            ["--format", "pai", str(TRACES / "pai_job_sample.csv"), "--gpu-type", "T4"],
            "must be TYPE=ACCELERATOR (got 'T4')",
        ),
        (["--format", "pai", str(TRACES / "pai_job_sample.csv"), "--gpu-type", "T4=t5"], "unknown accelerator 't5'"),
    ],
    ids=["wrong-format", "missing-file", "task-table-not-pai", "gpu-type-syntax", "gpu-type-unknown"],
)
def test_cli_bad_input_is_one_line_and_exit_2(extra, expected, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert main(["trace", "convert", *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert not out.exists()


def test_cli_unknown_format_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        main(["trace", "convert", "--format", "gcp", "x.csv", "-o", str(tmp_path / "o.csv")])
    assert excinfo.value.code == 2
