"""The report rule's script: pipeline_steps.report over the four statistics."""
import json
import os
import sys

import reproflow.snakemake as rf

sys.path.insert(0, os.getcwd())
import pipeline_steps as steps  # noqa: E402

with rf.record_job(snakemake):  # noqa: F821 - Snakemake defines it in a script
    stats = []
    for path in snakemake.input:  # noqa: F821
        with open(path) as f:
            stats.append(json.load(f))
    steps.report(stats, snakemake.output.out)  # noqa: F821
