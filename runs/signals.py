"""What the engine announces to the rest of `runs`, so that what reacts to runs sits above the engine.

`run_finished(run_id, status)` is sent inside the transaction that closes or cancels a run; the outbound
event webhooks (runs/events/emit.py) listen to it. The engine imports nothing of theirs: they use the
engine's queue and clock, and a call back into them would make the two import each other.
"""

from django.dispatch import Signal

# Sent with `run_id` and `status` (succeeded, partial, failed, cancelled); sender is runs.models.Run.
run_finished = Signal()
