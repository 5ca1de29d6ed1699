"""Placeholder: filled in by the auth pages."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.web.staff import StaffSite


def auth_router(site: StaffSite) -> APIRouter:
    return APIRouter()
