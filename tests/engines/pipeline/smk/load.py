"""The shell: rule's command: read the raw CSV (pipeline_steps.load), keep its rows as JSON."""
import json
import os
import sys

sys.path.insert(0, os.getcwd())
import pipeline_steps as steps  # noqa: E402

raw, out = sys.argv[1:3]
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(steps.load(raw), f)
