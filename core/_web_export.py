"""Web export of a jfx model: a static folder that predicts in the browser, offline.

:func:`export_web` writes a directory::

    <path>/index.html                    the page: a form built from the signature (one row), a
                                         CSV file input (many rows) and a results table
    <path>/jfx-web.js, jfx-web.css       the page's script and style (no CDN, no web fonts)
    <path>/model.onnx, signature.json    what :func:`jfx.core.export_onnx` writes
    <path>/ort.wasm.bundle.min.js        onnxruntime-web's WebAssembly build (its ES module
    <path>/ort-wasm-simd-threaded.wasm   ``ort.wasm.bundle.min.mjs`` and the binary), shipped
                                         with the jfx package; the module is written as ``.js``,
                                         which every static server sends as JavaScript (a
                                         module script must be sent so), unlike ``.mjs``

Any static file server serves it (``python -m http.server -d <path>``); the page fetches
only files of its own folder. Its script prepares raw rows as :func:`jfx.core.load_onnx`
does (the server's strict number checks, the signature's vocabularies, out-of-vocabulary
buckets and BLAKE2b hash buckets), runs the graph with onnxruntime-web on one thread (no
SharedArrayBuffer needed, so no special headers) and leaves the last result on
``window.jfxResult``.

The onnxruntime-web files come from the npm registry at build time: ``core/_web/package.json``
pins the version and ``package-lock.json`` its integrity hashes; ``make install`` runs
``npm ci --ignore-scripts`` and copies the two files into ``core/_web/vendor/``, which the
wheel carries as package data.

Example:
    >>> export_web("model_dir", "model_web")              # doctest: +SKIP
    >>> # python -m http.server -d model_web, then open http://127.0.0.1:8000/
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfx.core._export import LoadedModel
from jfx.core._onnx import OnnxExport, _size, export_onnx, staged_dir
from jfx.errors import AlreadyExistsError, InvalidArgumentError

__all__ = ["WebExport", "export_web", "vendor_files", "PAGE_FILES", "VENDOR_FILES"]

WEB_DIR = Path(__file__).parent / "_web"
PAGE_DIR = WEB_DIR / "page"
VENDOR_DIR = WEB_DIR / "vendor"
PAGE_FILES = ("index.html", "jfx-web.js", "jfx-web.css")
# onnxruntime-web's wasm-only ES module bundle (its Emscripten glue inside) and its binary
VENDOR_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
EXPORTED_NAMES = {"ort.wasm.bundle.min.mjs": "ort.wasm.bundle.min.js"}
# what onnxruntime-web's wasm backend takes as an input tensor
WEB_DTYPES = ("float32", "int32", "int8", "uint8", "bool")


@dataclass(frozen=True)
class WebExport:
    """What :func:`export_web` wrote.

    Attributes:
        path: the directory (open ``index.html`` through a static file server).
        onnx: the ONNX export inside it.
        size_bytes: every file of the folder together.
    """

    path: Path
    onnx: OnnxExport
    size_bytes: int

    def describe(self) -> str:
        return "\n".join([self.onnx.describe(),
                          f"wrote {self.path / 'index.html'} with onnxruntime-web ({_size(self.size_bytes)} in all)",
                          f"serve the folder with any static file server, e.g. python -m http.server -b 127.0.0.1 "
                          f"-d {self.path}, and open http://127.0.0.1:8000/"])


def vendor_files(vendor_dir: Path | None = None) -> list[Path]:
    """The onnxruntime-web files the page needs.

    Raises:
        InvalidArgumentError: one is missing (a checkout where ``make install`` has not
            run), in one line saying how to get them.
    """
    folder = VENDOR_DIR if vendor_dir is None else Path(vendor_dir)
    files = [folder / name for name in VENDOR_FILES]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise InvalidArgumentError(
            f"the web export needs onnxruntime-web's {', '.join(missing)} in {folder}, which is missing; in a jfx "
            "checkout run `make install` (npm ci in core/_web, then the copy), or install jfx from a wheel")
    return files


def export_web(model: str | Path | LoadedModel, path: str | Path, *, quantize: str | None = None,
               eval_examples: str | Path | Mapping[str, Any] | None = None, label_key: str | None = None,
               max_degradation: float | None = None, vendor_dir: str | Path | None = None) -> WebExport:
    """Writes ``model`` as a static web folder that predicts in the browser.

    Args:
        model: a model artifact directory (or one loaded with ``jfx.core.load``).
        path: the directory to create (must not exist, or be empty).
        quantize, eval_examples, label_key, max_degradation: as :func:`jfx.core.export_onnx`.
        vendor_dir: where onnxruntime-web's files are (default: the package's
            ``core/_web/vendor``).

    Raises:
        AlreadyExistsError: ``path`` exists and is not empty.
        InvalidArgumentError: onnxruntime-web's files are missing, an input dtype the
            browser runtime does not take, or what :func:`jfx.core.export_onnx` raises.
    """
    from jfx.core._export import load

    vendor = vendor_files(None if vendor_dir is None else Path(vendor_dir))
    page = [PAGE_DIR / name for name in PAGE_FILES]
    for f in page:
        if not f.is_file():
            raise InvalidArgumentError(f"the jfx package is incomplete: {f} is missing; reinstall jfx")
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AlreadyExistsError(f"{path} already exists and is not empty; export to a new directory")
    loaded = model if isinstance(model, LoadedModel) else load(model)
    odd = {n: s.model_dtype for n, s in loaded.inputs.items() if s.model_dtype not in WEB_DTYPES}
    if odd:
        raise InvalidArgumentError(f"{loaded.path}: the web export feeds {', '.join(WEB_DTYPES)} inputs; "
                                   f"{', '.join(f'{n!r} is {d}' for n, d in odd.items())}")
    with staged_dir(path) as tmp:
        onnx = export_onnx(loaded, tmp, quantize=quantize, eval_examples=eval_examples, label_key=label_key,
                           max_degradation=max_degradation)
        for f in (*page, *vendor):
            shutil.copyfile(f, tmp / EXPORTED_NAMES.get(f.name, f.name))
        size = sum(f.stat().st_size for f in tmp.iterdir())
    return WebExport(path, OnnxExport(path, onnx.size_bytes, onnx.float_size_bytes, onnx.quantize, onnx.check), size)
