"""Placeholder: filled in by the coordinators pages."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.web.staff import StaffSite


def coordinators_router(site: StaffSite) -> APIRouter:
    return APIRouter()
