"""Term extraction: kinds, language, stop words, stemming."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stories.stopwords import guess_language, stop_words_for
from monitor.stories.text import ENTITY_BOOST, extract, s_stem


def test_names_numbers_and_quotes_weigh_more_than_theme_words() -> None:
    tf = extract("", "The summit opened on Tuesday. Leaders met Macron in Paris and agreed "
                     "on 34 points, calling it “a historic summit”.", "en")
    w = tf.weights
    assert w["macron"] >= ENTITY_BOOST
    assert w["paris"] >= ENTITY_BOOST
    assert w["34"] > w["leader"]
    assert w["historic"] > w["agreed"]
    assert "the" not in w
    assert "on" not in w
    assert tf.language == "en"


def test_sentence_initial_capitals_are_not_names() -> None:
    w = extract("", "Leaders met. Officials spoke with Breuer.", "en").weights
    assert w["official"] < w["breuer"]


def test_title_case_headline_does_not_make_everything_a_name() -> None:
    w = extract("Troops Gather Near Border As Talks Stall", "Troops gathered near the border "
                "on Monday while talks in Geneva stalled.", "en").weights
    assert w["geneva"] > w["border"]


def test_title_words_count_like_body_words() -> None:
    # Headlines of two events on one theme share its words ("rehab", "ceasefire"):
    # a theme word weighs the same in the title as in the body, a name in either is a name.
    in_title = extract("Singer enters rehab", "The singer Lohan entered a clinic on Monday.",
                       "en").weights
    in_body = extract("Clinic news", "The singer Lohan entered rehab on Monday.", "en").weights
    assert in_title["rehab"] == in_body["rehab"] == 1.0
    assert in_title["lohan"] == in_body["lohan"] == ENTITY_BOOST


def test_language_guess_picks_stop_words() -> None:
    de = extract("", "Die Regierung hat am Dienstag in Berlin beschlossen, dass die Hilfe "
                     "für die Ukraine weiter geht und sie war sich einig.").weights
    assert "die" not in de
    assert "war" not in de
    assert "berlin" in de
    en = extract("", "The war in the east was the subject of talks that were held in Berlin.")
    assert en.language == "en"
    assert "war" in en.weights
    assert guess_language(["och", "det", "att", "i"]) == "sv"
    assert stop_words_for("en-GB") is stop_words_for("en")
    assert stop_words_for("xx") is None
    assert stop_words_for(None) is None


def test_s_stemmer_and_accents() -> None:
    assert [s_stem(w) for w in ("troops", "countries", "glasses", "news", "bus", "is")] == \
        ["troop", "country", "glasse", "new", "bus", "is"]
    w = extract("", "Slovenia's army chief, Lt. Gen. Robert Glavaš, spoke.", "en").weights
    assert "glavas" in w
    assert "slovenia" in w


def test_shingles_keep_every_word() -> None:
    tf = extract("A title", "one two three four", "en")
    assert tf.shingles[0] == "a title one"
    assert len(tf.shingles) == 4


def test_tokenizer_matches_the_plain_backtracking_pattern() -> None:
    # The shipped patterns use possessive quantifiers for speed; they must split text
    # exactly as the straightforward pattern (lazy gap, greedy word runs) does.
    import re

    from monitor.stories import text

    word = r"[^\W_]+(?:(?:['’](?![sS]\b)|[.\-])[^\W_]+)*"
    plain_gap_token = re.compile(r"([\W_]*?)(" + word + ")")
    plain_token = re.compile(word)
    samples = [
        "Hello, world! It's O'Brien's U.S. 30-day plan; «quote» „x“ and “y”.",
        "__init__ _a_ a_b a__b x' 's end. .. .. a's b’S c's'd 7,000 3.5% -- -x- x-",
        "Glavaš in İstanbul; STRASSE Straße ΣΟΦΙΑ Кривий Ріг, 9-14 Sept. 2011",
        "", "   ", "'", "a", "...a...", "a.b.c.d-e'f’g's",
    ]
    for s in samples:
        assert text._GAP_TOKEN.findall(s) == plain_gap_token.findall(s), s
        assert text._TOKEN.findall(s) == plain_token.findall(s), s
    assert text._tokens("Leaders met. Officials spoke with Breuer in U.S. Army's base.") == (
        ["leaders", "met", "officials", "spoke", "with", "breuer", "in", "u.s", "army", "s",
         "base"],
        {"breuer", "u.s"})   # "Army" follows a full stop: maybe a sentence start


_ASCIIISH = "aZ09 _.-'s,;:!?\"()\n\t\x1c\x1f"


@settings(max_examples=400, deadline=None)
@given(s=st.text(alphabet=_ASCIIISH, max_size=40))
def test_ascii_tokenizer_matches_the_unicode_one_on_ascii_text(s: str) -> None:
    # ASCII text is tokenized with plain ranges for the word classes (faster); on it
    # the matches must be exactly those of the Unicode pattern.
    from monitor.stories import text

    assert text._GAP_TOKEN_ASCII.findall(s) == text._GAP_TOKEN.findall(s)
