# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Execution
#
# Every chapter of this book was executed when the book was built (`make book`), reading the committed `results/`:
# the table lists each notebook's execution time in this build. The preset, seeds, device and dataset of every
# figure are in its chapter's verdict box, and the versions and commit in the provenance that each results folder
# stores (`summary.json`).
#
# ```{nb-exec-table}
# ```
#
# ## What regenerating the committed results costs
#
# Each results folder's seeds record their own wall time (`wall_time_s` in its `summary.json`, summed over the
# processes that worked on it), and runs made since the stages were timed also record each stage's time
# (`stage_seconds`: `base` networks, `masks`, `other` stored stages such as null models; evaluation is the rest;
# `–` where a run did not record it). Minutes on the 2-core CPU VMs the runs were made on (one thread each, often
# beside other jobs), all seeds of a folder together, drawn from the committed summaries when this book was built
# (`wmask.book.timing`; `python -m wmask.book.timing` prints the same):

# %% tags=["remove-input"]
from IPython.display import Markdown, display

from wmask.book.report import repo_root
from wmask.book.timing import markdown, regeneration_rows

rows = regeneration_rows(repo_root() / "results")
display(Markdown(markdown(rows)))
plain = sum(r["minutes"] for r in rows if r["folder"] == "cpu")
display(Markdown(f"The plain `cpu` folders, the ones `make results PRESET=cpu` regenerates, come to {plain:.0f} "
                 f"minutes ({plain / 60:.1f} h of one core); the `paper` folders and the runs with overrides are "
                 "regenerated only when asked for."))
