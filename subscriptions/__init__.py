"""Who hears what: wards, subscribers, subscriptions, consent and signed links.

This package knows nothing of `alerts`; `alerts` builds on it.
"""
