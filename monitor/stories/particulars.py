"""Event particulars: the years, weekdays, months, dates and counts a report mentions. Pure.

Two events that share their protagonists (the same boxer's two title fights, the same
coach fired and, years earlier, hired; two Indian Navy anti-piracy actions in the Gulf
of Aden) share names and theme words, so their term profiles look alike. What tells
them apart is *when* and *how many*: "on Saturday ... 23 pirates" against "Thursday,
November 11, 2011 ... 26 pirates". Reports of one event agree on those; reports of
two events do not. ``cluster.py`` turns that into evidence beside the cosine:

* a **conflict**: the article mentions values of a kind and none of them occurs in
  any member of the story that mentions that kind (``y2011`` against a story that
  only ever said ``y2008``);
* an **agreement**: one of the article's values is held by at least two thirds of
  the story's members that mention that kind (the story says ``n23``, so does it).

A *counted noun* is sharper than a bare count: "23 Somali pirates" and "26 pirates" say
different things about the same noun, where a bare ``n23`` against ``n26`` could be any
two numbers of two reports. Each noun is compared on its own (a ``c`` mark per noun and
value, its kind the noun), and all nouns together count as one kind: agreement when the
story agrees on one of them, else a conflict when the story holds a noun the article
counts and none of the article's values for it. Every counted number is a bare count
too, so a count that differs on its noun meets two conflicts (``n`` and ``c``) unless
another of the article's numbers occurs in the story: "12 killed", then "34 killed".

=====  ==========================================  ===================================
kind   mark                                        recognised by
=====  ==========================================  ===================================
``y``  ``y2011``                                   a 4-digit number 1950-2049
``w``  ``w5`` (Monday = 0)                         weekday names in en, de, fr, es, it,
                                                   nl, pt, sv (accent-folded)
``m``  ``m11`` (January = 1)                       capitalised month names and the
                                                   usual abbreviations, same languages
``d``  ``d1111`` (month, day)                     a calendar date (``dates.py``): its
                                                   year, if written, adds a ``y`` mark
``n``  ``n26``, ``n7000``                          any other number (``7,000`` -> 7000)
                                                   outside dates and clock times
``c``  ``cpirate=26``                              such a number and the first lower-case
                                                   word of 3-20 letters among the next
                                                   three (capitalised words skipped: "26
                                                   Somali pirates"), plural ``s`` off;
                                                   none after a stop word (the text's
                                                   language and English), past the clause
                                                   (``,`` and dashes end it too) or in
                                                   German, whose nouns are capitalised
=====  ==========================================  ===================================

Dates compare with a tolerance: ``d1111`` agrees with a story holding ``d1110`` or
``d1113`` (within ``DATE_TOLERANCE`` days), because outlets date one event's reports
a day or two apart (the event, the next morning's paper, another time zone).

Each kind counts once per comparison, so a long article with many numbers weighs no
more than a short one. The text must already be accent-folded (``stopwords.fold``).
"""

from __future__ import annotations

import re
from collections.abc import Set
from datetime import date, timedelta

from monitor.stories.dates import clock_spans, find_dates
from monitor.stories.stopwords import STOP_WORDS

KINDS = "ywmdnc"
DATE_TOLERANCE = 2   # days: one event's reports are dated within a day or two

_WEEKDAYS = [
    "monday montag lundi lunes lunedi maandag segunda mandag",
    "tuesday dienstag mardi martes martedi dinsdag terca tisdag",
    "wednesday mittwoch mercredi miercoles mercoledi woensdag quarta onsdag",
    "thursday donnerstag jeudi jueves giovedi donderdag quinta torsdag",
    "friday freitag vendredi viernes venerdi vrijdag sexta fredag",
    "saturday samstag samedi sabado sabato zaterdag lordag",
    "sunday sonntag dimanche domingo domenica zondag sondag",
]
_MONTHS = [
    "january jan januar janvier enero gennaio januari janeiro",
    "february feb februar fevrier febrero febbraio februari fevereiro",
    "march mar marz mars marzo maart marco",
    "april apr avril abril aprile",
    "may mai mayo maggio mei maio",
    "june jun juni juin junio giugno junho",
    "july jul juli juillet julio luglio julho",
    "august aug aout agosto augusti augustus",
    "september sep sept septembre septiembre settembre setembro",
    "october oct oktober octobre octubre ottobre outubro",
    "november nov novembre noviembre novembro",
    "december dec dezember decembre diciembre dicembre dezembro",
]
_WEEKDAY = {w: f"w{i}" for i, names in enumerate(_WEEKDAYS) for w in names.split()}
_MONTH = {w: f"m{i + 1}" for i, names in enumerate(_MONTHS) for w in names.split()}

# Weekdays count in any case ("saturday" is never another word); months only when
# capitalised somewhere, because "may", "march" and "sept" are also ordinary words.
_WEEKDAY_WORDS = frozenset(_WEEKDAY)
_MONTH_WORDS = frozenset(_MONTH)
_CALENDAR_WORDS = _WEEKDAY_WORDS | _MONTH_WORDS
MONTH_NUMBERS = {w: int(m[1:]) for w, m in _MONTH.items()}


def _date_mark(month: int, day: int) -> str:
    return f"d{month:02d}{day:02d}"


# Each date mark's neighbours within the tolerance (across month and year ends),
# computed once: comparing a date is then a few dict lookups.
_NEAR: dict[str, tuple[str, ...]] = {
    _date_mark(d.month, d.day): tuple(
        _date_mark(n.month, n.day) for n in (d + timedelta(days=k) for k in
                                             range(-DATE_TOLERANCE, DATE_TOLERANCE + 1)))
    for d in (date(2000, 1, 1) + timedelta(days=i) for i in range(366))
}
# A number not glued to letters: "23", "7,000", "2.5", and "9" and "14" of "9-14". Written
# for speed, same matches as the plain
# ``(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w]|[.,]\d)`` (tested): a pattern
# whose first item is a bare ``\d`` lets ``re`` skip ahead in C to the next digit instead
# of trying a match at every character (2-3x faster on a lead), so the first digit comes
# first and the "not glued on the left" check is a lookbehind over it.
_WORD_RE = re.compile(r"[^\W\d_]+")
NUMBER_PLAIN = r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w]|[.,]\d)"
_NUMBER_RE = re.compile(r"(\d(?<![\w.,]\d)(?:\d{0,2}(?:,\d{3})+|\d*(?:\.\d+)?))(?![\w]|[.,]\d)")
# the same for ASCII text, ``[0-9]`` for ``\d`` (same matches there, a faster scan)
_NUMBER_RE_ASCII = re.compile(_NUMBER_RE.pattern.replace(r"\d", "[0-9]"))


def _intern(mark: str) -> str:
    """One string object per distinct mark: a window holds ~10 marks per member.

    The table outlives the window and meets new counts every day, so once full it is
    emptied and starts again (it used to stop interning and keep 200k stale marks,
    ~20 MB, for good); members keep the strings they hold either way.
    """
    if len(_MARKS) >= MAX_INTERNED:
        _MARKS.clear()
    return _MARKS.setdefault(mark, mark)


_MARKS: dict[str, str] = {}
MAX_INTERNED = 50_000


def _number_mark(raw: str) -> str:
    value = raw.replace(",", "")
    if len(value) == 4 and value.isdigit() and 1950 <= int(value) <= 2049:
        return "y" + value
    return "n" + value


# The word after a count: "26 Somali pirates" -> "pirate", "$200 million" -> "million".
_AFTER = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
# A stop word of the text's language or of English ends the search ("12 of them", "12 de
# marzo"), except the few English units of time on the list ("8 years"); so does a
# weekday or month name. Unknown language: every list.
_TIME_UNITS = frozenset({"year", "years", "week", "day", "days", "time", "times"})
_ALL_STOPS = frozenset().union(*STOP_WORDS.values()) - _TIME_UNITS
_NOT_NOUNS = {lang: (words | STOP_WORDS["en"]) - _TIME_UNITS
              for lang, words in STOP_WORDS.items()}
# Languages whose nouns are capitalised: the lower-case word after a count is a verb.
_CAPITAL_NOUNS = frozenset({"de"})
COUNTED_SPAN = 3   # words looked at after a count, within its clause
# A comma ends it too ("arrested 3, charged 2 others"): thousands commas are the number's.
_CLAUSE_END = re.compile(r"[.!?;:,()\n\"“”«»—–]")
_SPAN_CHARS = 48
NOUN_MAX = 20   # longer: a run of an unspaced script, or not a word


def _counted_noun(text: str, end: int, not_nouns: frozenset[str]) -> str | None:
    """The counted noun after a number ending at ``end``, or None (module docstring)."""
    stop = _CLAUSE_END.search(text, end, end + _SPAN_CHARS)
    limit = stop.start() if stop else min(len(text), end + _SPAN_CHARS)
    for n, m in enumerate(_AFTER.finditer(text, end, limit)):
        if n >= COUNTED_SPAN:
            break
        word = m.group()
        if not word[0].islower():   # a name, or a script without case: no noun
            continue
        if m.end() == limit and (whole := _AFTER.match(text, m.start())) and whole.end() > limit:
            return None   # cut off by the span: not the word as written
        word = word.casefold()
        if word in not_nouns or word in _CALENDAR_WORDS:
            return None
        if len(word) < 3:
            continue
        if len(word) > NOUN_MAX:
            return None
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        return word
    return None


def kind_of(mark: str) -> str:
    """The kind a mark counts under: its first letter, or for a counted noun the noun."""
    return mark.partition("=")[0] if mark[0] == "c" else mark[0]


def particulars(text: str, words: Set[str] | None = None,
                language: str | None = None) -> tuple[str, ...]:
    """The sorted marks (``y2011``, ``w5``, ``m11``, ``d1111``, ``n26``, ``cpirate=26``) of an
    accent-folded text.

    ``words`` is the text's set of casefolded words when the caller has it already
    (``text.extract`` does): set intersections find the few weekday and month names
    far faster than a regex alternation over ~100 names would. ``language`` (two
    letters) picks the stop words that end a counted noun's search; German gives none.
    """
    if words is None:
        words = {w.casefold() for w in _WORD_RE.findall(text)}
    marks: set[str] = set()
    spans = clock_spans(text)
    # one pass over the article's words finds its weekday and month names together
    found = words & _CALENDAR_WORDS
    months = found & _MONTH_WORDS
    present = {w: MONTH_NUMBERS[w] for w in months}
    for span, year, month, day in find_dates(text, present):
        spans.append(span)
        marks.add(_date_mark(month, day))
        if 1950 <= year <= 2049:
            marks.add(f"y{year}")
    text_for_counts = text
    if spans:   # the digits of dates and clock times are not counts
        pieces, at = [], 0
        for start, end in sorted(spans):
            if start >= at:
                pieces += [text[at:start], " " * (end - start)]
                at = end
        text_for_counts = "".join(pieces) + text[at:]
    numbers = _NUMBER_RE_ASCII if text.isascii() else _NUMBER_RE
    not_nouns = _NOT_NOUNS.get(language or "", _ALL_STOPS)
    nouns = language not in _CAPITAL_NOUNS
    for m in numbers.finditer(text_for_counts):
        mark = _number_mark(m.group(1))
        marks.add(mark)
        if mark[0] == "n" and nouns:
            noun = _counted_noun(text_for_counts, m.end(), not_nouns)
            if noun is not None:
                marks.add(f"c{noun}={mark[1:]}")
    marks.update(_WEEKDAY[w] for w in found & _WEEKDAY_WORDS)
    for w in months:
        if re.search(r"\b" + w.capitalize() + r"\b", text):
            marks.add(_MONTH[w])
    # Counted nouns are nearly all distinct (670 in ECB+'s 462 documents, against 487
    # marks of every other kind): interned, they would empty the table for the others.
    return tuple(sorted(m if m[0] == "c" else _intern(m) for m in marks))


def evidence(marks: tuple[str, ...], held: dict[str, int], kinds: dict[str, int],
             agree_share: float) -> tuple[int, int]:
    """(agreeing kinds, conflicting kinds) of an article's marks against a story's.

    ``held`` counts the story's members holding each mark, ``kinds`` the members
    mentioning each kind at all (``kind_of``); a kind the story never mentions is
    neither. Counted nouns are compared noun by noun and count as one kind together.
    """
    best: dict[str, float] = {}
    for mark in marks:
        kind = kind_of(mark)
        n = kinds.get(kind, 0)
        if n:
            if kind == "d":
                share = max(held.get(near, 0) for near in _NEAR.get(mark, (mark,))) / n
            else:
                share = held.get(mark, 0) / n
            if share > best.get(kind, -1.0):
                best[kind] = share
    agree = conflict = 0
    noun_agree = noun_conflict = False
    for kind, share in best.items():
        if kind[0] == "c":
            noun_agree |= share >= agree_share
            noun_conflict |= share == 0.0
        elif share >= agree_share:
            agree += 1
        elif share == 0.0:
            conflict += 1
    if noun_agree:
        agree += 1
    elif noun_conflict:
        conflict += 1
    return agree, conflict
