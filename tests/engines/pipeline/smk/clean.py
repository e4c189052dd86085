"""The clean rule's script: pipeline_steps.clean on the loaded rows, recorded as the rule's job."""
import json
import os
import sys

import reproflow.snakemake as rf

sys.path.insert(0, os.getcwd())
import pipeline_steps as steps  # noqa: E402

with rf.record_job(snakemake):  # noqa: F821 - Snakemake defines it in a script
    with open(snakemake.input[0]) as f:  # noqa: F821
        steps.clean(json.load(f), snakemake.output.out)  # noqa: F821
