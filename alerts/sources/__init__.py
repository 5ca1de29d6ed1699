"""Sources: where items come from (feeds, calendars, the police API, officers' own posts)."""
