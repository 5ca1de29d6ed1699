"""Making emails: rendering every email the product sends from its templates, the stored
messages and their kinds, the link marks each copy fills in, MIME assembly, the signed
address scheme (`reply+`, `bounces+`, `unsubscribe+`) and the headers of staff mail. It opens
no transport: sending is `alerts.delivery`'s."""
