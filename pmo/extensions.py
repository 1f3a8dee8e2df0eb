"""The only module-level Flask singletons."""

from flask_wtf.csrf import CSRFProtect

from pmo.web.auth import login_manager

csrf = CSRFProtect()

__all__ = ["csrf", "login_manager"]
