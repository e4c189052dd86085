"""A data-science flow: pandas DataFrames and numpy arrays passed between tasks, a seeded
resampling task, an unseeded noise task (it never repeats: it must differ, never pass for
reproduced), a task scaled by an environment variable (set when recorded, not in the replay),
and csv/json/npy files written by pandas and numpy into an output folder given as a parameter
and made by the flow body."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"])
def load(src: Path) -> pd.DataFrame:
    return pd.read_csv(src)


@repro_task(seed=7)
def bootstrap(df: pd.DataFrame, n: int) -> np.ndarray:
    idx = np.random.randint(0, len(df), size=n)
    return df["value"].to_numpy()[idx]


@repro_task
def summarise(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("group", as_index=False)["value"].agg(["mean", "count"])


@repro_task
def jitter(df: pd.DataFrame) -> pd.DataFrame:
    noisy = df.copy()
    noisy["value"] = noisy["value"] + np.random.default_rng().normal(scale=0.1, size=len(noisy))
    return noisy


@repro_task
def noisy_mean(df: pd.DataFrame) -> float:
    return float(df["value"].mean())


@repro_task
def in_units(summary: pd.DataFrame) -> list[float]:
    factor = float(os.environ.get("ANALYSIS_UNIT_FACTOR", "1"))
    return [round(m * factor, 6) for m in summary["mean"]]


@repro_task
def write_outputs(summary: pd.DataFrame, sample: np.ndarray, out_dir: Path) -> list[Path]:
    csv, js, npy = out_dir / "summary.csv", out_dir / "summary.json", out_dir / "sample.npy"
    summary.to_csv(csv, index=False)
    summary.to_json(js, orient="records")
    np.save(npy, sample)
    return [csv, js, npy]


@flow
def analysis(src: Path = Path("data/measurements.csv"), out_dir: Path = Path("results"), n: int = 20) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    df = load(src)
    summary = summarise(df)
    write_outputs(summary, bootstrap(df, n), out_dir)
    in_units(summary)
    return noisy_mean(jitter(df))


if __name__ == "__main__":
    analysis()
