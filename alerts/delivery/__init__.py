"""Delivery: fan a message out to rows in the outbox, and the one sender that claims them,
has each email made (`alerts.mail`) and hands it to a transport. Only this package opens a
transport."""
