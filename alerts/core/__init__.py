"""The core every other package stands on: settings, the database, the event bus, the
catalogues of words residents read. It imports nothing else of `alerts`."""
