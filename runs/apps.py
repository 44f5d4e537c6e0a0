from django.apps import AppConfig


class RunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "runs"

    def ready(self) -> None:
        # Connects the outbound event webhooks to the engine's run_finished signal; imported here because
        # a receiver's module may only load once every app's models are ready.
        from runs.events import emit  # noqa: F401
