"""Two fixes for a clean browser console on every page of the book.

- Some theme extensions register their inline configuration scripts twice (``const THEBE_JS_URL`` declared twice is
  a JavaScript error); keep the first copy of every script.
- pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit (empty localStorage); start in
  "auto" mode instead.
"""

THEME_MODE = ('if (!localStorage.getItem("mode")) { localStorage.setItem("mode", "auto"); }'
              ' document.documentElement.dataset.mode = document.documentElement.dataset.mode || "auto";')


def dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename None vs "" for inline scripts
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique   # in place: later handlers (MathJax) still append to this list


def setup(app):
    app.add_js_file(None, body=THEME_MODE, priority=100)
    app.connect("html-page-context", dedupe_scripts, priority=100)  # emit_firstresult: run early
    return {"parallel_read_safe": True, "parallel_write_safe": True}
