"""Typed records that cross a process or package boundary: the run record (run.json), the job
file (job.json), the measured child's summary (worker.json) and the prediction lines
(predictions.jsonl). Each is a dataclass with `to_dict`/`from_dict` and exactly one writer, in
`records.files`.

This package imports nothing from the harness, the candidates or any model library: the
leaderboard reads run records through it without loading the model stack (`.importlinter`).
"""
