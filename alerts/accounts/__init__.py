"""Staff accounts: officers, coordinators and administrators, what each may touch, how
they sign in, and the audit log of what they changed. Residents have no accounts.
"""
