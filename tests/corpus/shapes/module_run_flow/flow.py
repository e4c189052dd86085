# This shape runs as `python -m pipeline.main 3` (expect.json "argv"), not as this file.
