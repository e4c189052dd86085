# This shape runs as `python -m pipeline.main 2` (expect.json "argv"), not as this file.
