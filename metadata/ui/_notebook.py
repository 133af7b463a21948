"""The web UI's viewers as self-contained HTML, for notebook outputs (``jfx.notebook``).

One output is a ``<div>`` and one classic ``<script>``: the UI's modules
(``static/lib/dom.js``, ``charts.js``, ``graph.js``, ``viewers.js``, ``notebook.js``)
joined into one function scope each, their imports turned into reads of a shared
namespace, with the viewer's data and the UI's stylesheet embedded. Nothing is fetched:
it draws offline, in JupyterLab, the classic Notebook and VS Code, and in a saved
notebook's HTML. The data is what the UI's API answers (``view_json``, ``run_json``,
``lineage_json``), so a notebook and the UI always show the same thing.
"""

from __future__ import annotations

import functools
import html
import json
import re
import uuid
from importlib import resources
from typing import Any

__all__ = ["bundle", "stylesheet", "render_html"]

_MODULES = ("dom.js", "charts.js", "graph.js", "viewers.js", "notebook.js")  # dependency order
_IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"[^"]+";[ \t]*$', re.M)
_EXPORT_DECL = re.compile(r"^export\s+((?:async\s+)?function\*?|class|const|let)\s+([A-Za-z_$][\w$]*)", re.M)
_EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\};?[ \t]*$", re.M)


def _static(name: str) -> str:
    return resources.files("jfx.metadata.ui").joinpath(f"static/{name}").read_text(encoding="utf-8")


def _module(source: str, name: str) -> str:
    """One ES module as a function that reads its imports from ``M`` and adds its exports to it."""
    names: list[str] = []
    body = _IMPORT.sub(lambda m: f"const {{{' '.join(m.group(1).split())}}} = M;", source)

    def decl(m: re.Match[str]) -> str:
        names.append(m.group(2))
        return f"{m.group(1)} {m.group(2)}"

    body = _EXPORT_DECL.sub(decl, body)

    def listed(m: re.Match[str]) -> str:
        names.extend(n.strip() for n in m.group(1).split(",") if n.strip())
        return ""

    body = _EXPORT_LIST.sub(listed, body)
    if re.search(r"^\s*(import|export)\b", body, re.M):
        raise ValueError(f"static/lib/{name}: an import or export the notebook bundle cannot translate")
    return f"(function (M) {{\n{body}\nObject.assign(M, {{ {', '.join(dict.fromkeys(names))} }});\n}})(M);\n"


@functools.lru_cache(maxsize=1)
def bundle() -> str:
    """The viewers as one classic script defining ``window.jfxNotebook`` (once per page)."""
    parts = [_module(_static(f"lib/{name}"), name) for name in _MODULES]
    # No server behind a notebook output: what a viewer would fetch (other runs to compare
    # with) is left out, without a request.
    parts.insert(1, 'M.api = async (path) => { throw new M.ApiError(0, `not in a notebook output: ${path}`); };\n')
    return ("if (!window.jfxNotebook) { window.jfxNotebook = (function () {\nconst M = {};\n"
            + "".join(parts) + "return M;\n})(); }\n")


@functools.lru_cache(maxsize=1)
def stylesheet() -> str:
    """The UI's stylesheet, its page-wide rules scoped to the output's shadow root."""
    css = _static("style.css")
    css = re.sub(r"(^|[},\s]):root\b", r"\1:host", css)
    return re.sub(r"(^|[}\s])body\s*\{", r"\1:host {", css)


def _script_json(value: Any) -> str:
    # inside <script>, "</script" ends the element and "<!--" changes how it is parsed: "<"
    # occurs only inside JSON strings, where \u003c means the same; U+2028/9 end a JS line
    text = json.dumps(value, default=str, allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_html(items: list[dict[str, Any]], *, title: str = "") -> str:
    """A notebook output drawing ``items`` (each ``{"kind", "data", "title"?}``) with the UI's viewers.

    Example:
        >>> out = render_html([{"kind": "error", "data": {"message": "no such artifact"}}])
        >>> out.startswith('<div class="jfx-output"') and "window.jfxNotebook" in out
        True
    """
    element = f"jfx-{uuid.uuid4().hex}"
    summary = html.escape(title or ", ".join(str(i.get("title") or i.get("kind")) for i in items))
    payload = {"items": items}
    return (
        f'<div class="jfx-output" id="{element}" aria-label="{summary}">'
        f'<noscript>{summary} (the viewers need JavaScript)</noscript></div>\n'
        f"<script>\n{bundle()}"
        f"window.jfxNotebook.renderNotebook(document.getElementById({json.dumps(element)}), "
        f"{_script_json(payload)}, {_script_json(stylesheet())});\n</script>"
    )
