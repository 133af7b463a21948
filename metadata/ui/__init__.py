"""``jfx ui``: a read-only web UI over the metadata store (runs, DAGs, executions, artifacts, lineage).

Every page's data is also JSON under ``/api`` (``GET /api`` lists the routes); every
error is ``{"error": {"code": ..., "message": ...}}``. See docs/ui.md.

Example:
    >>> from jfx.metadata.ui import UIServer
    >>> with UIServer("sqlite:////tmp/jfx-doc/metadata.sqlite", port=0) as ui:   # doctest: +SKIP
    ...     print(ui.url)
    http://127.0.0.1:40123/
"""

from jfx.metadata.ui._server import API_ROUTES, UIApp, UIServer, open_store_read_only

__all__ = ["UIServer", "UIApp", "API_ROUTES", "open_store_read_only"]
