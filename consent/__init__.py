"""Email consent: topics, unsubscribes, the suppression list, and the email layouts messages are wrapped in.

- `consent.models`: Topic, Unsubscribe, Suppression, EmailLayout (all tenant-owned).
- `consent.checks.skip_reasons(...)`: which of a batch's recipients must not get the step's email
  (one statement per batch).
- `consent.suppression.suppress_address(...)`: the one way an address enters the suppression list
  (SMTP 5xx at RCPT, delivery events from providers, admins, imports).
- `consent.tokens`: signed, non-expiring unsubscribe links per tenant, recipient and topic.
- `consent.layouts`: a message's HTML through its layout, CSS inlined, and a text part when none is given.
"""
