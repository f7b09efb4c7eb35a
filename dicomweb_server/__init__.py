"""A DICOMweb archive whose studies outside facilities find and retrieve under patient authorization."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "create_app"]


def __getattr__(name: str) -> object:
    # The application and settings are imported on first use, so `dicomweb-server --version`
    # and the submodules stay cheap to import.
    if name == "create_app":
        from dicomweb_server.app import create_app

        return create_app
    if name == "Settings":
        from dicomweb_server.config import Settings

        return Settings
    raise AttributeError(name)
