"""Term extraction: kinds, language, stop words, stemming."""

from __future__ import annotations

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
