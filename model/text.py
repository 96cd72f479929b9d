"""Text analysis the saved model calls: language, tokens with offsets, features.

Everything the pickled artifact references lives here (the vectorizers call
``identity_features``); moving or renaming it changes the artifact format.
"""

from __future__ import annotations

import itertools
import json
import re
import runpy
import unicodedata
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import spacy
from spacy.attrs import IDX, LENGTH

from model.boilerplate import boilerplate_spans

SUPPORTED_LANGS = ("de", "en")
# Languages whose stop-word lists (shipped inside spaCy) compete with German and English in
# language detection, so a French or Polish request is recognised as "other" instead of
# being forced into German or English.
_DETECTION_LANGS = ("de", "en", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "tr", "cs")
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
# Words for telling the language: runs of letters standing alone, not the letters of "2FA",
# "mp3" or "user_id" ("fa" is an Italian stop word, and made "Bitte 2FA" look Italian).
_LONE_WORD_RE = re.compile(r"\b[^\W\d_]+\b")
_LATIN_RE = re.compile(r"[a-z\u00c0-\u024f]+")
# Half of a UTF-16 surrogate pair: JSON ("\\ud800") and Python strings can hold one, UTF-8
# cannot, so any output holding it would fail to be written.
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CHAR_NGRAMS = (3, 5)


# Named tuples, not dataclasses: a text has dozens of tokens and building them is hot.
class Token(NamedTuple):
    """A word of the original text: ``text[start:end]`` is exactly what was written."""

    lower: str
    start: int
    end: int


@dataclass
class Analysis:
    """What the model needs to know about one text, with offsets into the original."""

    text: str
    lang: str
    tokens: list[Token] = field(default_factory=list)
    # Spans that deny a security concern ("no security issue"); their words are left out.
    denials: list[tuple[int, int]] = field(default_factory=list)
    # Greetings, sign-offs, signatures, legal footers, template headings: left out too.
    boilerplate: list[tuple[int, int]] = field(default_factory=list)
    truncated: bool = False

    @property
    def word_features(self) -> list[str]:
        words = [t.lower for t in self.tokens]
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    @property
    def char_features(self) -> list[str]:
        grams: list[str] = []
        for token in self.tokens:
            grams.extend(char_ngrams(token.lower))
        return grams


def identity_features(features: list[str]) -> list[str]:
    """Analyzer for the vectorizers: features are computed by ``Analysis`` already."""
    return features


@lru_cache(maxsize=200_000)
def char_ngrams(word: str) -> tuple[str, ...]:
    """Character n-grams of one word, padded at both ends (like scikit-learn's ``char_wb``)."""
    padded = f" {word} "
    low, high = CHAR_NGRAMS
    return tuple(
        padded[i : i + n] for n in range(low, high + 1) for i in range(len(padded) - n + 1)
    )


# ---------------------------------------------------------------- language detection


@cache
def _stop_word_table() -> tuple[dict[str, int], np.ndarray]:
    """Each stop word's row, and per row the weight it gives each detection language.

    A word counts for every language whose spaCy stop-word list holds it; short words shared
    by many languages ("a", "de", "in") decide little on their own, so the more languages
    share a word, the less it counts for each.
    """
    owners: dict[str, list[int]] = {}
    lang_dir = Path(spacy.__file__).parent / "lang"
    for column, lang in enumerate(_DETECTION_LANGS):
        # Run the stop-word file alone: importing ``spacy.lang.fr`` would also compile the
        # French tokenizer's exception regexes, which takes seconds.
        stop_words = runpy.run_path(str(lang_dir / lang / "stop_words.py"))["STOP_WORDS"]
        for word in stop_words:
            owners.setdefault(word.lower(), []).append(column)
    rows = {word: row for row, word in enumerate(owners)}
    weights = np.zeros((len(owners), len(_DETECTION_LANGS)))
    for word, columns in owners.items():
        weights[rows[word], columns] = 1.0 / len(columns)
    return rows, weights


LANG_PROFILE_PATH = Path(__file__).with_name("resources") / "lang_profiles.json"


def profile_trigrams(text: str) -> list[str]:
    """Character trigrams of the letters-only words of a text, padded with spaces."""
    grams = []
    for word in _WORD_RE.findall(text.lower()):
        padded = f" {word} "
        grams.extend(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


@cache
def _lang_profiles() -> dict[str, tuple[dict[str, float], float]]:
    """Per language: trigram log-likelihoods, and the score of an unseen trigram."""
    profiles = json.loads(LANG_PROFILE_PATH.read_text(encoding="utf-8"))
    # An unseen trigram is rarer than the rarest kept one.
    return {lang: (profile, min(profile.values()) - 1.0) for lang, profile in profiles.items()}


def _guess_by_spelling(text: str) -> str:
    """German or English by character trigram likelihood (for texts without function words)."""
    trigrams = profile_trigrams(text)
    scores = {
        lang: sum(profile.get(g, floor) for g in trigrams)
        for lang, (profile, floor) in _lang_profiles().items()
    }
    return max(scores, key=lambda lang: scores[lang])


def detect_lang(text: str) -> str:
    """``"de"``, ``"en"`` or ``"other"``, from stop words and letters alone (offline)."""
    head = text[:5000]
    if not unicodedata.is_normalized("NFC", head):  # "für" typed as u + combining diaeresis
        head = unicodedata.normalize("NFC", head)
    words = _LONE_WORD_RE.findall(head.lower())
    if not words:
        return "other"
    if not head.isascii():
        letters = "".join(words)
        if len(_LATIN_RE.sub("", letters)) > len(letters) / 2:  # mostly Cyrillic, Han, Arabic…
            return "other"
    rows, weights = _stop_word_table()
    hits = [row for word in words if (row := rows.get(word)) is not None]
    scores = dict(zip(_DETECTION_LANGS, weights[hits].sum(axis=0).tolist(), strict=True))
    best = max(scores, key=lambda lang: scores[lang])
    if scores[best] < 1.5:
        # Ticket titles such as "Wartemusik pro Queue?" have almost no function words: decide
        # between German and English by spelling, since the form only takes those two.
        return _guess_by_spelling(head)
    if best in SUPPORTED_LANGS:
        return best
    # A German or English request quoting a French customer still is German or English.
    runner_up = max(SUPPORTED_LANGS, key=lambda lang: scores[lang])
    return runner_up if scores[runner_up] >= 0.8 * scores[best] else "other"


# ---------------------------------------------------------------- tokenisation


@cache
def _nlp(lang: str) -> spacy.language.Language:
    nlp = spacy.blank(lang)
    # Only the tokens' offsets are read. The lexical attributes spaCy computes for every word
    # it has not seen (norm, shape, prefix, suffix, like_num, …) are never used, and were a
    # third of the tokenizer's time on new text; the tokens are the same without them.
    nlp.vocab.lex_attr_getters = {}
    return nlp


@cache
def _stop_union() -> frozenset[str]:
    return _nlp("de").Defaults.stop_words | _nlp("en").Defaults.stop_words


# Statements that a request is NOT about security ("no security issue, just a new ringtone").
# The security words inside such a statement are no evidence for the label.
_NEGATION_WORDS = (
    r"(?:no|not|nothing|none|isn't|isnt|kein|keine|keinen|keinem|keiner|nicht|nichts|ohne)"
)
_SECURITY_WORDS = (
    r"(?:security|secure|sicherheit\w*|sicherheits\w*|datenschutz\w*|privacy|gdpr|dsgvo"
    r"|vulnerability|sicherheitsl\w*)"
)
_CONCERN_WORDS = (
    r"(?:issue|issues|problem|problems|concern|concerns|risk|risks|relevant|related|thema"
    r"|frage|bezug|aspekt|hintergrund|matter|question|angle|topic|bug)"
)
_DISCLAIMER_RE = re.compile(
    rf"\b{_NEGATION_WORDS}\W+(?:\w+\W+){{0,3}}?{_SECURITY_WORDS}(?:\W+\w+){{0,2}}?\W*{_CONCERN_WORDS}?"
    rf"|\b{_NEGATION_WORDS}\W+(?:\w+\W+){{0,2}}?(?:sicherheits|security)\w*(?:problem|relevant|thema|risiko|issue)\w*"
    rf"|nothing to do with\W+{_SECURITY_WORDS}|nichts mit\W+(?:der\W+)?{_SECURITY_WORDS}",
    re.IGNORECASE,
)
_CONCERN_RE = re.compile(_CONCERN_WORDS, re.IGNORECASE)
# Every match of _SECURITY_WORDS contains one of these; a substring test is ten times cheaper
# than the case-insensitive pattern, and most requests deny nothing.
_SECURITY_STEMS = ("secur", "sicherheit", "datenschutz", "privacy", "gdpr", "dsgvo", "vulnerab")


def _disclaimers(text: str) -> list[tuple[int, int]]:
    """Spans that deny a security concern, e.g. "no security issue", "kein Sicherheitsthema"."""
    lowered = text.lower()
    if not any(stem in lowered for stem in _SECURITY_STEMS):
        return []
    spans = []
    for match in _DISCLAIMER_RE.finditer(text):
        phrase = match.group(0)
        # "no 2FA on the admin portal, a security risk" denies nothing: demand a concern word
        # right in the phrase, or a phrase that starts "nothing to do with".
        if _CONCERN_RE.search(phrase) or phrase.lower().startswith(("nothing", "nichts")):
            spans.append(match.span())
    return spans


def _word_form(raw: str) -> str | None:
    """Normalised form of a token; None for symbols, emoji and stop words (left out)."""
    if not any(ch.isalnum() for ch in raw):
        return None
    lower = unicodedata.normalize("NFKC", raw.lower())
    if lower.isdigit():
        return "<num>"
    return None if lower in _stop_union() else lower


def lone_surrogate(text: str) -> int | None:
    """Where ``text`` holds half of a UTF-16 surrogate pair (JSON's ``\\ud800``), or None."""
    found = _SURROGATE_RE.search(text)
    return None if found is None else found.start()


def has_control_chars(text: str) -> bool:
    return _CONTROL_RE.search(text) is not None


def clean_text(text: str) -> str:
    """Replace control characters by spaces; offsets stay those of the original text."""
    return _CONTROL_RE.sub(" ", text)


def analyze(text: str, max_chars: int = 20_000) -> Analysis:
    """Tokenise one text with the spaCy tokenizer of its language.

    Half of a surrogate pair becomes U+FFFD in ``Analysis.text`` (one character for one, so
    offsets stay), so that evidence quoted from it can always be written out.
    """
    if lone_surrogate(text) is not None:
        text = _SURROGATE_RE.sub("\ufffd", text)
    truncated = len(text) > max_chars
    body = clean_text(text[:max_chars])
    framing = boilerplate_spans(body, _stop_union())
    # The request's language, not its frame's: a German wish in an English issue template.
    lang = detect_lang(_outside(body, framing) if framing else body)
    denied = _disclaimers(body)
    tokens = _words(body, "de" if lang == "de" else "en")
    if skipped := denied + framing:
        tokens = [t for t in tokens if not any(s <= t.start < e for s, e in skipped)]
    return Analysis(text, lang, tokens, denied, framing, truncated)


def _outside(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with the given (ordered, disjoint) spans cut out."""
    parts, at = [], 0
    for start, end in spans:
        parts.append(text[at:start])
        at = end
    parts.append(text[at:])
    return "\n".join(parts)


# spaCy's tokenizer splits each whitespace-separated chunk on its own (its special cases hold
# no whitespace), so each chunk's words are worked out once and remembered. spaCy's own cache
# does not do this well enough: it keeps only the first 10,000 chunks it meets, and caches
# nothing after an exception such as "z.B." or "don't" in the same text.
_CHUNK_RE = re.compile(r"\S+")  # \s is str.isspace(), the tokenizer's own test
# About 260 bytes a chunk (the sample texts hold 47,000 distinct ones): at most about 26 MB per
# language before the memo starts afresh.
_MAX_CHUNKS = 100_000
# Per tokenizer language: chunk -> its words as (form, start, end) relative to the chunk, only
# the kept ones (stop words, symbols and emoji are left out).
_CHUNK_WORDS: dict[str, dict[str, tuple[tuple[str, int, int], ...]]] = {"de": {}, "en": {}}


def _words(body: str, lang: str) -> list[Token]:
    """The kept words of ``body`` with their offsets, as spaCy's ``lang`` tokenizer splits it."""
    chunks = [(match.start(), match.group()) for match in _CHUNK_RE.finditer(body)]
    memo = _CHUNK_WORDS[lang]
    unseen = [chunk for _, chunk in chunks if chunk not in memo]
    if unseen:
        if len(memo) + len(unseen) > _MAX_CHUNKS:
            memo = _CHUNK_WORDS[lang] = {}
            unseen = [chunk for _, chunk in chunks]
        _learn_chunks(_nlp(lang), list(dict.fromkeys(unseen)), memo)
    return [
        Token(form, at + start, at + end)
        for at, chunk in chunks
        for form, start, end in memo[chunk]
    ]


# spaCy's tokenizer takes time far worse than linear in a chunk's length when the chunk is a
# run of punctuation or emoji: 0.3 ms at 100 characters, 11 ms at 800, 37 s at 20,000, and the
# service's model thread is blocked meanwhile. No word is that long (one chunk of all the
# sample texts is, a pasted log line), so longer chunks are split into runs of word
# characters instead, which takes linear time.
_LONG_CHUNK = 100
_WORD_RUN_RE = re.compile(r"\w+")
# A long URL stays one word, as spaCy keeps a short one: split into its runs it read as
# "http", "x", "org", … and a text that is only a link escaped the too_short flag.
_LONG_URL_RE = re.compile(r"[(\[{<'\"]*(?:[a-z][a-z0-9+.\-]*://|www\.)", re.I)
_AFTER_URL = ".,;:!?)]}>'\""


def _learn_chunks(
    nlp: spacy.language.Language,
    chunks: list[str],
    memo: dict[str, tuple[tuple[str, int, int], ...]],
) -> None:
    """Tokenise new chunks in one call (joined by single spaces, which split nothing else)."""
    for chunk in [c for c in chunks if len(c) > _LONG_CHUNK]:
        url = _LONG_URL_RE.match(chunk)
        if url is not None:
            start = len(chunk) - len(chunk.lstrip("([{<'\""))
            end = len(chunk.rstrip(_AFTER_URL))
            if (form := _word_form(chunk[start:end])) is not None:
                memo[chunk] = ((form, start, end),)
                continue
        runs = ((_word_form(m.group()), m.start(), m.end()) for m in _WORD_RUN_RE.finditer(chunk))
        memo[chunk] = tuple((form, start, end) for form, start, end in runs if form is not None)
    chunks = [c for c in chunks if len(c) <= _LONG_CHUNK]
    if not chunks:
        return
    joined = " ".join(chunks)
    spans = nlp.make_doc(joined).to_array(_TOKEN_ATTRS).tolist()
    at, position = 0, 0
    for chunk in chunks:
        end_of_chunk = at + len(chunk)
        words = []
        while position < len(spans) and spans[position][0] < end_of_chunk:
            start, length = spans[position]
            for part_start, part_end in _hyphen_parts(joined, start, start + length):
                form = _word_form(joined[part_start:part_end])
                if form is not None:
                    words.append((form, part_start - at, part_end - at))
            position += 1
        memo[chunk] = tuple(words)
        at = end_of_chunk + 1
    _forget_words_if_large(nlp)


_TOKEN_ATTRS = [IDX, LENGTH]
# spaCy's English tokenizer splits "Admin-Portal" at the hyphen, its German one does not, so
# the same term in a German and an English request, or "Admin-Portal" and "Admin Portal" in
# one language, were different words with different character n-grams. Both languages now
# split a hyphen between two word characters; the word pair keeps the compound.
_HYPHEN_RE = re.compile(r"(?<=\w)-(?=\w)")


def _hyphen_parts(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A token's parts between hyphens ("Admin-Portal": "Admin", "Portal"), as offsets."""
    if "-" not in text[start:end]:
        return [(start, end)]
    parts, at = [], start
    for match in _HYPHEN_RE.finditer(text, start, end):
        parts.append((at, match.start()))
        at = match.end()
    parts.append((at, end))
    return parts


_MAX_VOCAB = 300_000


def _forget_words_if_large(nlp: spacy.language.Language) -> None:
    """A long-running service sees endless new words; spaCy's vocabulary keeps them all.

    Start the tokenizer afresh once it holds too many, so memory stays bounded.
    """
    if len(nlp.vocab) > _MAX_VOCAB:
        _nlp.cache_clear()
