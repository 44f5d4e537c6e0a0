from django.apps import AppConfig


class RunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "runs"

    def ready(self) -> None:
        # Connects the outbound event webhooks to the engine's run_finished signal; imported here because
        # a receiver's module may only load once every app's models are ready.
        # The provider pages' "N queued" (integrations cannot import the engine that counts them).
        from integrations import ratelimit
        from runs.events import emit  # noqa: F401
        from runs.provider_queue import queued_messages

        if queued_messages not in ratelimit.QUEUE_COUNTERS:
            ratelimit.QUEUE_COUNTERS.append(queued_messages)
