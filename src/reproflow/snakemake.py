"""Snakemake 9 jobs recorded into one reproflow run per invocation (see docs/engines.md)::

    import reproflow.snakemake as rf

    onstart: rf.onstart()
    onsuccess: rf.onsuccess()
    onerror: rf.onerror()

    rule clean:
        input: "data/raw.csv"
        output: "results/clean.csv"
        script: "scripts/clean.py"          # with rf.record_job(snakemake): ...

    rule count:
        input: "results/clean.csv"
        output: "results/count.txt"
        shell: rf.shell("wc -l < {input} > {output}")
"""

from .engines._snakemake import job_info, onerror, onstart, onsuccess, record_job, shell

__all__ = ["job_info", "onerror", "onstart", "onsuccess", "record_job", "shell"]
