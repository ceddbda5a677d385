"""entrasim: an HTTPS stand-in for the Microsoft identity platform and Microsoft Graph."""

from .app import Sim, create_app
from .server import SimServer

__all__ = ["Sim", "SimServer", "create_app"]
