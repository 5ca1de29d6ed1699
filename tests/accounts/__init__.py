"""Staff accounts: sign-in, sessions, password resets and who may touch what."""
