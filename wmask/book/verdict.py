"""What a check returns, and the one word a claim gets from its checks.

A claim is checked as one or more inequalities (:mod:`wmask.book.checks`); each gives a :class:`Line`: it holds,
does not hold, or is **untestable** with a reason (a base network below its target, a mask that had not settled,
numbers that cannot show the effect). A claim's :class:`Verdict` is *holds* only when every line could be checked
and held: a claim with an untestable line never reads *holds*.
"""
from __future__ import annotations

from dataclasses import dataclass

HOLDS, PARTLY, FAILS, UNTESTABLE, NOT_RUN = "holds", "partly", "does not hold", "untestable", "not run"


@dataclass(frozen=True)
class Line:
    """One inequality checked: ``holds`` (None when untestable), the numbers and thresholds in words (``detail``),
    and why it could not be checked (``reason``, "" when it could)."""
    holds: bool | None
    detail: str
    reason: str = ""

    @property
    def word(self) -> str:
        return UNTESTABLE if self.holds is None else HOLDS if self.holds else FAILS

    def __str__(self) -> str:
        return f"[{self.word}] {self.detail}" + (f" (untestable: {self.reason})" if self.reason else "")


def line(reason: str, holds, detail: str) -> Line:
    """A check's line: untestable with ``reason`` when there is one, else whether ``holds``."""
    return Line(None, detail, reason) if reason else Line(bool(holds), detail)


@dataclass(frozen=True)
class Verdict:
    """A claim's word over its lines: ``holds`` (every line checked and held), ``partly`` / ``does not hold`` (some
    or none of the checked lines held), ``untestable`` (no line checked, or every checked line held but some could
    not be checked: the reason is the first untestable line's), ``not run`` (no line)."""
    word: str
    held: int = 0
    checked: int = 0
    untestable: int = 0
    reason: str = ""

    @property
    def brief(self) -> str:
        """The verdict in a table cell: the word and its counts, an untestable one with the kind of its reason only
        (e.g. "untestable: mask not converged")."""
        if self.word == UNTESTABLE:
            return f"untestable: {self.reason.split(':')[0].split(' (')[0]}"
        return str(self)

    def __str__(self) -> str:
        if self.word == NOT_RUN:
            return NOT_RUN
        more = f"; {self.untestable} untestable" if self.untestable else ""
        if self.word == UNTESTABLE:
            return f"untestable: {self.reason}" + (
                f" (the {self.checked} other checks hold)" if self.checked > 1 else
                " (the 1 other check holds)" if self.checked else "")
        return f"{self.word} ({self.held}/{self.checked} checks{more})"


def tally(lines: list[Line]) -> Verdict:
    """The claim's :class:`Verdict` from its lines."""
    if not lines:
        return Verdict(NOT_RUN)
    checked = [ln for ln in lines if ln.holds is not None]
    held = sum(bool(ln.holds) for ln in checked)
    unknown = [ln for ln in lines if ln.holds is None]
    reason = unknown[0].reason if unknown else ""
    if not checked or (unknown and held == len(checked)):
        word = UNTESTABLE
    else:
        word = HOLDS if held == len(checked) else FAILS if held == 0 else PARTLY
    return Verdict(word, held, len(checked), len(unknown), reason or ("no check could be made" if unknown else ""))
