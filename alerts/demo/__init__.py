"""The demo: sample data written in the project's own words, and a runner that tours the
whole pipeline on embedded defaults (SQLite, a maildir outbox, feeds served on loopback)."""
