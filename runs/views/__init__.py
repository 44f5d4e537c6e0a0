"""Views of the activity log, the sandbox's messages and the test interface (one module per page)."""
