"""The publish preview: what publishing a draft would do, answered on the workflow's own recent events.

- `events.py`: the events to replay (the last N real runs' stored payloads);
- `rehearsal.py`: each event through a version as a test run (messages captured, waits skipped), run
  by the engine itself in this process: the real send path, with consent, suppression and budgets;
- `outcomes.py`: what each rehearsal did, per event and step; `compare.py`: live → draft, per send step;
- `blast.py`: the draft's fan-out queries run read-only now, and a database trigger's recent rows;
- `inflight.py`: the live runs waiting at each step, and moving them to the new version exactly once;
- `job.py`: the RQ job that computes a preview and stores it in `workflows.PublishPreview`.
"""
