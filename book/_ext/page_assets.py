"""Two fixes for a clean browser console on every page of the book, and the repository buttons behind a setting.

- Some theme extensions register their inline configuration scripts twice (``const THEBE_JS_URL`` declared twice is
  a JavaScript error); keep the first copy of every script.
- pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit (empty localStorage); start in
  "auto" mode instead.
- The repository button and the launch buttons (Binder, Colab) need the repository's public address: set
  ``WMASK_REPO_URL`` (and ``WMASK_REPO_BRANCH``, default ``main``) when building the book to show them; without it
  the book shows none, so no reader meets a dead link.
"""
import os

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


def repository_buttons(app, config):
    url = os.environ.get("WMASK_REPO_URL", "").strip().rstrip("/")
    opts = dict(config.html_theme_options or {})
    if url:
        opts.update(repository_url=url, repository_branch=os.environ.get("WMASK_REPO_BRANCH", "main"),
                    use_repository_button=True,
                    launch_buttons={"binderhub_url": "https://mybinder.org",
                                    "colab_url": "https://colab.research.google.com", "notebook_interface": "classic"})
    else:
        opts.update(use_repository_button=False, use_issues_button=False, use_edit_page_button=False,
                    use_source_button=False, launch_buttons={})
        opts.pop("repository_url", None)
    config.html_theme_options = opts


def setup(app):
    app.connect("config-inited", repository_buttons)
    app.add_js_file(None, body=THEME_MODE, priority=100)
    app.connect("html-page-context", dedupe_scripts, priority=100)  # emit_firstresult: run early
    return {"parallel_read_safe": True, "parallel_write_safe": True}
