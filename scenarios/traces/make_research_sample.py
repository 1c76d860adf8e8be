"""Write research_sample.csv: a synthetic 600-job GPU-cluster trace in dcsim's schema (seed 2026).

Not real data: sizes and a heavy-tailed (Pareto) duration mix loosely shaped like published GPU-cluster
traces (most jobs small and short, a few large and long); users pick over-estimated run times
(estimate_s = duration x U[1, 3]). Four teams, priorities 0-2. Run: python make_research_sample.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(2026)
count = 600
gpus = rng.choice([1, 2, 4, 8, 16, 32], size=count, p=[0.45, 0.15, 0.15, 0.15, 0.07, 0.03])
durations = np.minimum(600 * (1 + rng.pareto(1.4, count)), 3 * 86400).round(0)
submits = np.cumsum(rng.exponential(3600 / 22, count)).round(0)  # offered load ~0.9 on 64 GPUs
frame = pd.DataFrame(
    {
        "job_id": [f"r{i:04d}" for i in range(count)],
        "submit_s": submits,
        "gpus": gpus,
        "duration_s": durations,
        "user": rng.choice(["vision", "nlp", "speech", "rl"], size=count, p=[0.3, 0.4, 0.1, 0.2]),
        "priority": rng.choice([0, 1, 2], size=count, p=[0.7, 0.2, 0.1]),
        "estimate_s": (durations * rng.uniform(1, 3, count)).round(0),
    }
)
frame.to_csv(Path(__file__).with_name("research_sample.csv"), index=False)
