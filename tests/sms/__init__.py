"""A test-only SMS channel, provider kind and step kind: the shape a new channel takes. Each is its own
module here, and tests/sms/registration.py adds each with one line per registry (CHANNELS,
PROVIDER_KINDS, STEP_KINDS); nothing else in Rowbell knows about SMS."""
