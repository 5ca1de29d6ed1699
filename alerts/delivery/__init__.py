"""Delivery: fan a message out to rows in the outbox, build each email, hand it to a transport."""
