"""The engine's public entry points. (Foundation version: creates the run; the engine issue runs it.)"""

from runs.engine.start import WorkflowNotPublished, start_run

__all__ = ["WorkflowNotPublished", "start_run"]
