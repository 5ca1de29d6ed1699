"""Digests: what a ward's digest holds, how it is rendered, and queueing it for delivery."""
