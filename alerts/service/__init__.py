"""The long-running service: `alerts run` (scheduler, delivery loop and web in one process)
and `alerts worker` (the delivery loop alone, to scale out).

`main` starts and stops the parts; `scheduler` builds APScheduler on the project's database;
`plan` decides which jobs should exist and brings the job store in line; `jobs` holds the
callables the job store refers to; `context` is where those callables find the running
service; `delivery` is the outbox loop; `webserver` serves the web app inside the same loop.

This package imports nothing at load time; what other processes read of the job table is
`alerts.core.scheduler_store`'s.
"""
