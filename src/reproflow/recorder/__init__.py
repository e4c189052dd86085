"""The engine-neutral recorder: runs, task attempts, plain-Python recording, declarations, seeds,
DAG edges and the content cache key. Imports no workflow engine. See docs/architecture.md."""
