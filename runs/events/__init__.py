"""Outbound event webhooks: Rowbell POSTs a signed JSON event to a tenant's endpoints.

- emit.py: writes one `EventDelivery` per subscribed endpoint in the transaction that closes or cancels a
  run (it listens to the engine's `runs.signals.run_finished`), or that records a provider's message event
  (runs/tracking.py), an outbox, and queues them on commit;
- delivery.py: the RQ job that signs and POSTs one delivery, its retries, and the periodic re-queue;
- views.py, urls.py: the endpoints' settings page, `/settings/event-webhooks/` (it sends test events).

The event types and the endpoint form live in integrations/events/.
"""
