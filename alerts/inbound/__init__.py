"""Inbound mail: what comes back to the product's addresses, classified and routed.

`mail` reads raw bytes into an `InboundMail`; `classify` (pure) says what it is;
`bounces`, `commands` and `replies` act on it; `intake` ties the steps together for the
three ways in (`lmtp`, `imap`, files on the command line).
"""
