"""Tenant providers of every channel: the kinds a tenant can connect (an SMTP server, an ESP, later an SMS
gateway...), one module per kind behind one registry (`PROVIDER_KINDS`, integrations/providers/registry.py).

A kind belongs to a channel (`ProviderKind.channel`, a name in integrations/channels/registry.py); a tenant's
`integrations.models.Provider` row names its kind and so its channel. Email's kinds live in
integrations/email_providers/.
"""
