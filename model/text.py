"""Text analysis the saved model calls: language, tokens with offsets, concepts, features.

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

import spacy
from spacy.attrs import IDX, IS_PUNCT, IS_SPACE, LENGTH, LOWER
from spacy.matcher import PhraseMatcher
from spacy.strings import StringStore

from model.lexicon import CONCEPTS, CONCERN_WORDS, NEGATION_WORDS, SECURITY_WORDS

SUPPORTED_LANGS = ("de", "en")
# Languages whose stop-word lists (shipped inside spaCy) compete with German and English in
# language detection, so a French or Polish request is recognised as "other" instead of
# being forced into German or English.
_DETECTION_LANGS = ("de", "en", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "tr", "cs")
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CHAR_NGRAMS = (3, 5)


@dataclass(frozen=True)
class Token:
    """A word of the original text: ``text[start:end]`` is exactly what was written."""

    lower: str
    start: int
    end: int


@dataclass(frozen=True)
class ConceptHit:
    concept: str
    start: int
    end: int


@dataclass
class Analysis:
    """What the model needs to know about one text, with offsets into the original."""

    text: str
    lang: str
    tokens: list[Token] = field(default_factory=list)
    concepts: list[ConceptHit] = field(default_factory=list)
    markers: list[ConceptHit] = field(default_factory=list)
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

    @property
    def concept_features(self) -> list[str]:
        return [f"c:{hit.concept}" for hit in self.concepts] + [
            f"m:{hit.concept}" for hit in self.markers
        ]


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
def _stop_word_owners() -> dict[str, tuple[str, ...]]:
    """Each stop word with the languages whose spaCy stop-word list holds it."""
    owners: dict[str, list[str]] = {}
    lang_dir = Path(spacy.__file__).parent / "lang"
    for lang in _DETECTION_LANGS:
        # Run the stop-word file alone: importing ``spacy.lang.fr`` would also compile the
        # French tokenizer's exception regexes, which takes seconds.
        stop_words = runpy.run_path(str(lang_dir / lang / "stop_words.py"))["STOP_WORDS"]
        for word in stop_words:
            owners.setdefault(word.lower(), []).append(lang)
    return {word: tuple(langs) for word, langs in owners.items()}


LANG_PROFILE_PATH = Path(__file__).with_name("resources") / "lang_profiles.json"


def profile_trigrams(text: str) -> list[str]:
    """Character trigrams of the letters-only words of a text, padded with spaces."""
    grams = []
    for word in _WORD_RE.findall(text.lower()):
        padded = f" {word} "
        grams.extend(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


@cache
def _lang_profiles() -> dict[str, dict[str, float]]:
    return json.loads(LANG_PROFILE_PATH.read_text(encoding="utf-8"))


def _guess_by_spelling(text: str) -> str:
    """German or English by character trigram likelihood (for texts without function words)."""
    profiles = _lang_profiles()
    scores = {}
    for lang, profile in profiles.items():
        floor = min(profile.values()) - 1.0  # unseen trigram: rarer than the rarest kept one
        scores[lang] = sum(profile.get(g, floor) for g in profile_trigrams(text))
    return max(scores, key=lambda lang: scores[lang])


def detect_lang(text: str) -> str:
    """``"de"``, ``"en"`` or ``"other"``, from stop words and letters alone (offline)."""
    words = [w.lower() for w in _WORD_RE.findall(text[:5000])]
    if not words:
        return "other"
    owners = _stop_word_owners()
    # Short words shared by many languages ("a", "de", "in") decide little on their own, so
    # each hit counts less the more languages share the word.
    scores = dict.fromkeys(_DETECTION_LANGS, 0.0)
    for word in words:
        langs = owners.get(word)
        if langs:
            for lang in langs:
                scores[lang] += 1.0 / len(langs)
    best = max(scores, key=lambda lang: scores[lang])
    if scores[best] < 1.5:
        # Ticket titles such as "Wartemusik pro Queue?" have almost no function words: decide
        # between German and English by spelling, since the form only takes those two.
        return _guess_by_spelling(text[:5000])
    if best in SUPPORTED_LANGS:
        return best
    # A German or English request quoting a French customer still is German or English.
    runner_up = max(SUPPORTED_LANGS, key=lambda lang: scores[lang])
    return runner_up if scores[runner_up] >= 0.8 * scores[best] else "other"


# ---------------------------------------------------------------- tokenisation and concepts


@cache
def _nlp(lang: str) -> spacy.language.Language:
    return spacy.blank(lang)


@cache
def _stop_union() -> frozenset[str]:
    return _nlp("de").Defaults.stop_words | _nlp("en").Defaults.stop_words


def _affix_pattern(patterns: list[str]) -> re.Pattern[str] | None:
    parts = []
    for pattern in patterns:
        stem = re.escape(pattern.strip("*"))
        if pattern.startswith("*") and pattern.endswith("*"):
            parts.append(f".*{stem}.*")
        elif pattern.startswith("*"):
            parts.append(f".*{stem}")
        else:
            parts.append(f"{stem}.*")
    return re.compile("(?:" + "|".join(parts) + r")\Z") if parts else None


@cache
def _affix_rules() -> tuple[tuple[str, re.Pattern[str]], ...]:
    rules = []
    for concept, patterns in CONCEPTS.items():
        compiled = _affix_pattern([p for p in patterns if "*" in p])
        if compiled is not None:
            rules.append((concept, compiled))
    return tuple(rules)


@lru_cache(maxsize=200_000)
def token_concepts(lower: str) -> tuple[str, ...]:
    """Concepts whose prefix, suffix or infix patterns match one lower-cased token."""
    return tuple(concept for concept, rule in _affix_rules() if rule.match(lower))


@cache
def _phrase_matcher(lang: str) -> PhraseMatcher:
    nlp = _nlp(lang)
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    for concept, patterns in CONCEPTS.items():
        phrases = [p for p in patterns if "*" not in p]
        matcher.add(concept, list(nlp.tokenizer.pipe(phrases)))
    return matcher


_DISCLAIMER_RE = re.compile(
    rf"\b{NEGATION_WORDS}\W+(?:\w+\W+){{0,3}}?{SECURITY_WORDS}(?:\W+\w+){{0,2}}?\W*{CONCERN_WORDS}?"
    rf"|\b{NEGATION_WORDS}\W+(?:\w+\W+){{0,2}}?(?:sicherheits|security)\w*(?:problem|relevant|thema|risiko|issue)\w*"
    rf"|nothing to do with\W+{SECURITY_WORDS}|nichts mit\W+(?:der\W+)?{SECURITY_WORDS}",
    re.IGNORECASE,
)
_CONCERN_RE = re.compile(CONCERN_WORDS, re.IGNORECASE)
_SECURITY_RE = re.compile(SECURITY_WORDS, re.IGNORECASE)


def _disclaimers(text: str) -> list[tuple[int, int]]:
    """Spans that deny a security concern, e.g. "no security issue", "kein Sicherheitsthema"."""
    if not _SECURITY_RE.search(text):  # cheap pre-check: most requests never deny anything
        return []
    spans = []
    for match in _DISCLAIMER_RE.finditer(text):
        phrase = match.group(0)
        # "no 2FA on the admin portal, a security risk" denies nothing: demand a concern word
        # right in the phrase, or a phrase that starts "nothing to do with".
        if _CONCERN_RE.search(phrase) or phrase.lower().startswith(("nothing", "nichts")):
            spans.append(match.span())
    return spans


@lru_cache(maxsize=200_000)
def _token_info(raw_lower: str) -> tuple[str | None, tuple[str, ...], bool]:
    """Normalised form (None for symbols and emoji), concepts and stop-word flag of a token."""
    if not any(ch.isalnum() for ch in raw_lower):
        return None, (), True
    lower = unicodedata.normalize("NFKC", raw_lower)
    concepts = token_concepts(lower)
    if lower.isdigit():
        lower = "<num>"
    return lower, concepts, lower in _stop_union()


def has_control_chars(text: str) -> bool:
    return _CONTROL_RE.search(text) is not None


def clean_text(text: str) -> str:
    """Replace control characters by spaces; offsets stay those of the original text."""
    return _CONTROL_RE.sub(" ", text)


def analyze(text: str, max_chars: int = 20_000) -> Analysis:
    """Tokenise one text with the spaCy tokenizer of its language and find concepts."""
    truncated = len(text) > max_chars
    body = clean_text(text[:max_chars])
    lang = detect_lang(body)
    tokenizer_lang = "de" if lang == "de" else "en"
    nlp = _nlp(tokenizer_lang)
    doc = nlp.make_doc(body)
    denied = _disclaimers(body)
    analysis = Analysis(text=text, lang=lang, truncated=truncated)
    if denied:
        analysis.markers = [ConceptHit("no_security_claim", s, e) for s, e in denied]

    def in_denial(start: int) -> bool:
        return any(s <= start < e for s, e in denied)

    # Reading token attributes as one array is several times faster than Token objects.
    strings = nlp.vocab.strings
    for lower_hash, start, length, is_punct, is_space in doc.to_array(_TOKEN_ATTRS).tolist():
        if is_punct or is_space or (denied and in_denial(start)):
            continue
        lower, concepts, is_stop = _token_info_by_hash(lower_hash, strings)
        if lower is None:
            continue
        end = start + length
        for concept in concepts:
            analysis.concepts.append(ConceptHit(concept, start, end))
        if not is_stop:
            analysis.tokens.append(Token(lower, start, end))
    for match_id, s, e in _phrase_matcher(tokenizer_lang)(doc):
        start, end = doc[s].idx, doc[e - 1].idx + len(doc[e - 1].text)
        if not (denied and in_denial(start)):
            analysis.concepts.append(ConceptHit(strings[match_id], start, end))
    _forget_words_if_large(nlp)
    return analysis


_TOKEN_ATTRS = [LOWER, IDX, LENGTH, IS_PUNCT, IS_SPACE]
_MAX_VOCAB = 300_000
_by_hash: dict[int, tuple[str | None, tuple[str, ...], bool]] = {}


def _token_info_by_hash(
    lower_hash: int, strings: StringStore
) -> tuple[str | None, tuple[str, ...], bool]:
    # spaCy's string hashes are a fixed function of the string, so one cache serves both
    # tokenizers.
    info = _by_hash.get(lower_hash)
    if info is None:
        info = _token_info(strings[lower_hash])
        if len(_by_hash) < _MAX_VOCAB:
            _by_hash[lower_hash] = info
    return info


def _forget_words_if_large(nlp: spacy.language.Language) -> None:
    """A long-running service sees endless new words; spaCy's vocabulary keeps them all.

    Start the tokenizer afresh once it holds too many, so memory stays bounded.
    """
    if len(nlp.vocab) > _MAX_VOCAB:
        _nlp.cache_clear()
        _phrase_matcher.cache_clear()
