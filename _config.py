"""Settings read from the environment, in one place.

Environment variables are read when a function here is called (not at import), so a
test or a CLI flag can set them first; each value is validated on read.
"""

from __future__ import annotations

import os
from pathlib import Path

from jfx.errors import InvalidArgumentError

__all__ = ["jfx_home", "default_metadata_url", "default_pipeline_root", "resolve_metadata_url", "ui_url",
           "notify_webhook_url", "smtp_login", "UI_URL_ENV", "WEBHOOK_URL_ENV", "SMTP_USER_ENV", "SMTP_PASSWORD_ENV",
           "gc_pause_after"]

UI_URL_ENV = "JFX_UI_URL"                    # where `jfx ui` is reached: links to runs in notifications
WEBHOOK_URL_ENV = "JFX_NOTIFY_WEBHOOK_URL"   # the Notifier's webhook when its parameter is empty (a secret)
SMTP_USER_ENV = "JFX_SMTP_USER"              # the Notifier's SMTP login (default: the sender's address)
SMTP_PASSWORD_ENV = "JFX_SMTP_PASSWORD"      # set: the Notifier logs in; never a parameter
DEFAULT_UI_URL = "http://127.0.0.1:8080"     # `jfx ui`'s default address


def jfx_home() -> Path:
    """``$JFX_HOME``, default ``~/.jfx``: where the default store and artifacts live."""
    raw = os.environ.get("JFX_HOME", "").strip()
    home = Path(raw).expanduser() if raw else Path.home() / ".jfx"
    if home.exists() and not home.is_dir():
        raise InvalidArgumentError(f"JFX_HOME={str(home)!r} exists but is not a directory")
    return home.resolve()


def default_metadata_url() -> str:
    """``$JFX_METADATA_URL``, else ``sqlite:///$JFX_HOME/metadata.sqlite``."""
    raw = os.environ.get("JFX_METADATA_URL", "").strip()
    if raw:
        if "://" not in raw:
            # the value is not repeated: it may hold a password
            raise InvalidArgumentError(
                "JFX_METADATA_URL is not a database URL (it has no '://'); expected e.g. "
                "'sqlite:////path/metadata.sqlite' or 'postgresql+psycopg://user@host/db'"
            )
        return raw
    return f"sqlite:///{jfx_home() / 'metadata.sqlite'}"


def default_pipeline_root() -> Path:
    """``$JFX_HOME/artifacts``: where outputs go when a pipeline names no root."""
    return jfx_home() / "artifacts"


def resolve_metadata_url(url: str | None) -> str:
    """The URL to use: the one given, else the default from the environment."""
    return url if url else default_metadata_url()


def _http_url(name: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or len(raw.split("://", 1)[1].split("/", 1)[0]) == 0:
        # the value is not repeated: a webhook URL carries its secret in the path
        raise InvalidArgumentError(f"{name} is not an http(s) URL; expected e.g. https://host/path")
    return raw


def ui_url() -> str:
    """``$JFX_UI_URL``, default ``http://127.0.0.1:8080`` (``jfx ui``'s): the base of links to runs."""
    raw = os.environ.get(UI_URL_ENV, "").strip()
    return _http_url(UI_URL_ENV, raw).rstrip("/") if raw else DEFAULT_UI_URL


def notify_webhook_url() -> str | None:
    """``$JFX_NOTIFY_WEBHOOK_URL``: the Notifier's webhook when none is given (it holds a secret)."""
    raw = os.environ.get(WEBHOOK_URL_ENV, "").strip()
    return _http_url(WEBHOOK_URL_ENV, raw) if raw else None


def smtp_login() -> tuple[str | None, str | None]:
    """``($JFX_SMTP_USER, $JFX_SMTP_PASSWORD)``, each ``None`` when unset or empty."""
    user = os.environ.get(SMTP_USER_ENV, "").strip() or None
    password = os.environ.get(SMTP_PASSWORD_ENV) or None
    return user, password
def gc_pause_after() -> int | None:
    """``$JFX_GC_PAUSE_AFTER``: ``jfx gc`` stops for good after removing this many artifacts' files
    (before recording them DELETED), to prove what a gc killed there leaves; unset: never."""
    raw = os.environ.get("JFX_GC_PAUSE_AFTER", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidArgumentError(f"JFX_GC_PAUSE_AFTER={raw!r}: expected a whole number of artifacts, at least 1")
    return int(raw)
