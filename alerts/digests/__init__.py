"""Digests: what a ward's digest holds (compose), when it is due (schedule), what each
subscription has had (ledger), and the calendar of its contact sessions (invites). Making it
an email is `alerts.mail`'s; queueing a round is `alerts.usecases.digest_rounds`."""
