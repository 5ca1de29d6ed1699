"""The web: `app.create_app` builds the FastAPI application; `health` gathers what
`/healthz` reports. Pages for residents, officers and coordinators join as one module each.
"""
