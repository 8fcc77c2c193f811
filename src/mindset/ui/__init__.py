"""`mindset ui`: the browser workbench. A `Workbench` holds the loaded model and the edited one with an
undoable history of edits (which is a recipe); `create_app` puts an HTTP API over it and serves the page
in assets/. It sits on top, beside cli and recipes: it calls the capabilities, nothing below imports it."""

from mindset.ui.workbench import Workbench

__all__ = ["Workbench"]
