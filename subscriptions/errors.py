"""The one root of the product's errors, `AlertsError`, and what each kind means on the web.

It lives at the bottom (both `subscriptions` and `alerts` import it; `alerts.core.errors`
re-exports it). Every error class of the product derives from it, beside the built-in base a
caller may catch (a `WardError` is also a `ValueError`), so that the command line turns any
of them into one line (`alerts.cli.app`) and the web into its status (`alerts.web.app`).
`http_status` says which status; the message is written for the person who asked, and names
no resident they did not name themselves.

    AlertsError                       500 unless a kind below says otherwise
    ├── what was asked is wrong       400  WardError, SchemeError, SubscriberError,
    │                                      AddressError, CsvError, PostcodeError, TopicError,
    │                                      LanguageError, UserError, CoordinatorError,
    │                                      InputError, PrintError, ScheduleError, ResetError,
    │                                      SourceError, ListenAddressError, MalformedMail,
    │                                      BodyTooLarge
    ├── not signed in                 401  SignInRequired (the staff site redirects instead),
    │                                      WebhookUnsigned
    ├── not yours                     403  Forbidden, FormRefused, WebhookRefused
    ├── not found                     404  NotFound, NoDigestYet
    ├── a source sent nonsense        502  policeuk's _Malformed
    ├── store or server unavailable   503  DatabaseError, IntakeUnavailable, ImapError,
    │                                      RetryLater, MaildirError, DeliveryFailure (and its
    │                                      TransientFailure, PermanentFailure, ServerUnavailable)
    └── cannot start as configured    500  ConfigError, ServiceError, DemoError
"""

from __future__ import annotations


class AlertsError(Exception):
    """Something the product refuses or cannot do; the message says what, in one line."""

    http_status: int = 500
