"""Placeholder: filled in by the officers pages."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.web.staff import StaffSite


def officers_router(site: StaffSite) -> APIRouter:
    return APIRouter()
