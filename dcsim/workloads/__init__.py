"""What arrives and how it runs: cluster jobs (synthetic streams and CSV traces)."""

from dcsim.workloads.jobs import Job, read_job_trace, synthetic_jobs

__all__ = ["Job", "read_job_trace", "synthetic_jobs"]
