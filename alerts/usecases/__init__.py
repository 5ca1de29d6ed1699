"""What people do, as services the web pages and the commands both call: officers posting
and answering, coordinators keeping their scheme's list, residents confirming, voting and
asking for their data, the digest rounds the scheduler runs, the open feeds. Each use case
checks its rules, stores, audits and publishes its events here, so a handler only parses,
calls and shows."""
