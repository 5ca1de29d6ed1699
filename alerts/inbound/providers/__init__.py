"""Provider webhooks: the bounce and complaint events of the relay's provider (Amazon SES
through SNS, SendGrid, Postmark, Mailgun), verified and read here, below the web layer.

One module per provider checks that a call is genuine (its signature, or Postmark's basic
auth), fresh (`webhooks.max_age_seconds`) and read its events into `ProviderEvent`s;
`events` ties each event to the one delivery its signed reference names and acts on it
exactly as on an inbound bounce or complaint, once per event id.
"""
