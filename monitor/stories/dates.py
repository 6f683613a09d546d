"""Calendar dates and clock times written in a text. Pure, no I/O.

Why: the particulars (``particulars.py``) used to read "Friday, November 11, 2011,
19:04" as a weekday, a month, a year and the *counts* 11, 19 and 4. The counts were
noise: every report has a day of the month and a time, so two different events
agreed on "11" or "12" as often as two reports of one event. Read whole, a date is
a better particular than any of its parts: reports of one event are dated within a
day or two of each other, two events with the same protagonists usually are not.

Recognised (month names of ``particulars._MONTHS``: en, de, fr, es, it, nl, pt, sv;
accent-folded text, any case):

* ``November 11, 2011``, ``Nov. 11``, ``Dec 15th, 2008``, ``Sat Nov 12 2011``
* ``11 November 2011``, ``10 Nov 11`` (10 November), ``3. Mai``, ``12 de marzo de 2025``
* ``2011-11-11``, ``2011-11-11T19:04Z``, ``11.11.2011``, ``04/28/2009``, ``27 / 09 / 2013``
  (an ambiguous ``03/04/2011`` gives both readings; ``12/31/98`` is 1998, ``04/28/09``
  2009); a day the year does not have (``29.02.2011``) is no date

Lower-case "may", "march", "sept" and the three-letter abbreviations are ordinary
words too, so they only count as months when capitalised. Clock times (``19:04``,
``9.25 a.m.``, ``10 pm``, ``1100 hrs``, ``0300 GMT``) are found so that their digits
are not taken for counts. No library: dateparser resolves one expression at a time
and costs milliseconds per article; these few patterns cost microseconds and share
the month table with the rest of the particulars.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

Span = tuple[int, int]

# Month-name dates: the pattern is built from the month names the text contains (a
# set intersection the caller already made), so it is an alternation over one or two
# names, not ~100. Numeric dates and clock times share one digit-led pass each.
@lru_cache(maxsize=512)
def _named(names: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    alt = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    month_day = re.compile(
        r"((?i:" + alt + r"))\b\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?![\d:]|\.\d)"
        r"(?:\s*,?\s*((?:19|20)\d\d)(?!\d))?")
    day_month = re.compile(
        r"(\d\d?)(?:st|nd|rd|th|er|\.)?\s+(?:de\s+)?((?i:" + alt + r"))\b\.?"
        r"(?:\s*,?\s*(?:de\s+)?((?:19|20)\d\d)(?!\d))?")
    return month_day, day_month


# 2011-11-11, 11.11.2011, 11/11/2011, 04 / 28 / 09: three numbers, one separator.
# Every pattern here starts at a digit or a month name, not at ``\b``, and is case-
# sensitive outside the names: the regex engine then skips ahead in C to where a
# match can start (3x faster); the word boundary before it is checked in Python.
# ``\d\d{0,3}``, not ``\d{1,4}`` (same matches): ``re`` only skips ahead when the
# pattern's first item is a single character class, not a repeat (~1.5-2x faster again).
# An ISO 8601 timestamp's date ends at its "T" ("2011-11-11T19:04:00Z").
_NUMERIC = re.compile(r"(\d\d{0,3})\s*([-./])\s*(\d{1,2})\s*\2\s*(\d{4}|\d\d)(?:\b|(?=T\d))")
NUMERIC_PLAIN = r"(\d{1,4})\s*([-./])\s*(\d{1,2})\s*\2\s*(\d{4}|\d\d)(?:\b|(?=T\d))"
_CLOCK_TAIL = (r"(?:\s*:\s*\d\d(?:\s*:\s*\d\d)?(?:\s*[aApP]\.?\s*[mM]\b\.?)?"
               r"|(?:\s*\.\s*\d\d)?\s*[aApP]\.?\s*[mM]\b\.?|\s*(?:hrs|GMT|UTC)\b)")
CLOCK_PLAIN = r"\d{1,4}" + _CLOCK_TAIL
_CLOCK = re.compile(r"\d\d{0,3}" + _CLOCK_TAIL)
# For ASCII text: the same patterns with ``[0-9]`` for ``\d`` (same matches there; ``re``
# skips ahead to a range faster than to a Unicode digit, see ``text.ascii_form``).
_NUMERIC_ASCII = re.compile(_NUMERIC.pattern.replace(r"\d", "[0-9]"))
_CLOCK_ASCII = re.compile(_CLOCK.pattern.replace(r"\d", "[0-9]"))


def _starts_word(text: str, start: int) -> bool:
    return start == 0 or not text[start - 1].isalnum()


AMBIGUOUS = frozenset(["may", "march", "mar", "mars", "sept", "sep", "jan", "feb", "apr",
                       "jun", "jul", "aug", "oct", "nov", "dec", "mai"])

Found = tuple[Span, int, int, int]   # (span, year or 0, month, day)


def _valid(year: int, month: int, day: int) -> bool:
    try:
        # the year when written (29 February 2011 is no date); else a leap year
        date(year if 1 <= year <= 9999 else 2000, month, day)
    except ValueError:
        return False
    return True


def _two_digit(year: int) -> int:
    """``98`` is 1998, ``11`` 2011: the pivot most software uses (POSIX ``%y``)."""
    return year + (1900 if year >= 69 else 2000)


def find_dates(text: str, months: dict[str, int]) -> list[Found]:
    """Every date mention: its span, year (0 when not written), month and day.

    ``months`` maps the lower-case month names and abbreviations *that occur in the
    text* to 1-12 (the caller intersects the text's words with its month table).
    """
    found: list[Found] = []

    def month_of(word: str) -> int | None:
        low = word.lower()
        if low not in months or (word.islower() and low in AMBIGUOUS):
            return None
        return months[low]

    if months:
        month_day, day_month = _named(tuple(months))
        for m in month_day.finditer(text):
            month = month_of(m.group(1))
            if month is not None and _starts_word(text, m.start()):
                found.append((m.span(), int(m.group(3) or 0), month, int(m.group(2))))
        for m in day_month.finditer(text):
            month = month_of(m.group(2))
            if month is not None and _starts_word(text, m.start()):
                found.append((m.span(), int(m.group(3) or 0), month, int(m.group(1))))
    for m in (_NUMERIC_ASCII if text.isascii() else _NUMERIC).finditer(text):
        if not _starts_word(text, m.start()):
            continue
        first, sep, second, last = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        if len(first) == 4:   # 2011-11-11: year, month, day
            if sep == "-":
                found.append((m.span(), int(first), second, last))
            continue
        if sep == "-":
            continue   # 2-1-1: a score or a code, not a date
        a, year = int(first), last if last >= 100 else _two_digit(last)
        if sep == ".":   # 11.03.2025: day first
            found.append((m.span(), year, second, a))
            continue
        if a != second and a <= 12 and second <= 12:
            found.append((m.span(), year, second, a))   # day first, as in most of the world
        found.append((m.span(), year, a, second) if a <= 12 else (m.span(), year, second, a))
    # Overlaps ("10 Nov 11" reads as 10 November and as November 11): the leftmost,
    # then longest, reading wins; the two readings of one ambiguous slash date stay.
    found.sort(key=lambda f: (f[0][0], -f[0][1]))
    kept: list[Found] = []
    for f in found:
        if kept and f[0][0] < kept[-1][0][1] and f[0] != kept[-1][0]:
            continue
        if _valid(f[1], f[2], f[3]):
            kept.append(f)
    return kept


def clock_spans(text: str) -> list[Span]:
    """Where clock times are written (``19:04``, ``9.25 a.m.``, ``1100 hrs``)."""
    spans = []
    for m in (_CLOCK_ASCII if text.isascii() else _CLOCK).finditer(text):
        found = m.group()
        digits = len(found) - len(found.lstrip("0123456789"))
        tail = found[digits:].lstrip()[:1].lower()
        # "19:04" and "10 pm" have at most two digits before the mark; "1100 hrs" more
        start = m.start()
        after_iso_t = start >= 2 and text[start - 1] == "T" and text[start - 2].isdigit()
        if ((_starts_word(text, start) or after_iso_t)
                and (digits <= 2 or tail in ("h", "g", "u"))):
            spans.append(m.span())
    return spans
