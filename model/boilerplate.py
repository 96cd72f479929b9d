"""Parts of a request that are not the request: greetings, sign-offs, signatures, legal
footers, mobile-mail taglines, the headings and hints of issue templates, and machine output
(fenced code blocks, timestamped log lines).

Their words say nothing of the wish, yet they moved the model: a mail footer's "confidential
information" read as a security concern, and a GitHub template's headings as broad value.
Framing the 114 clear-cut behaviour-test requests so changed the labels of 17 to 79 of them.
``boilerplate_spans`` finds them, and ``analyze`` leaves their words out, in training and at
suggestion time alike. Everything here works on whole lines and is conservative: a line
that might carry the wish stays.
"""

from __future__ import annotations

import re

# A line that only greets: "Hallo zusammen,", "Hi team!", "Sehr geehrte Damen und Herren,".
_GREETING_RE = re.compile(
    r"(?:hallo|hello|hi|hey|moin|servus|grüß gott|guten (?:morgen|tag|abend)|good (?:morning"
    r"|afternoon|evening)|sehr geehrte[rs]?|liebe[rs]?|dear|greetings)\b[^.?!\n]{0,40}[,!.:]?",
    re.IGNORECASE,
)
# A line that only takes leave: "Viele Grüße", "Mit freundlichen Grüßen", "Thanks,", "BR".
_CLOSING_RE = re.compile(
    r"(?:(?:mit )?(?:freundlichen|besten|herzlichen|sonnigen|kollegialen) grüßen"
    r"|(?:viele|liebe|beste|herzliche|schöne|sonnige) grüße(?: aus \w+)?|grüße|gruß|mfg|vg|lg"
    r"|(?:vielen )?dank(?:e)?(?: (?:im voraus|vorab|schon mal|euch|ihnen))?"
    r"(?:,? (?:und|&) (?:viele|beste|liebe) grüße)?"
    r"|(?:best|kind|warm|many|with kind) regards|regards|best|cheers|sincerely|yours"
    r"|(?:many )?thanks(?: (?:in advance|again|a lot|all))?(?:,? (?:and )?(?:best|regards))?"
    r"|thank you(?: (?:in advance|all))?|thx|br|rgds)[,.!]?",
    re.IGNORECASE,
)
# Lines of a legal footer. Each needs a phrase that no request would use for its own point:
# "confidential" alone is a request's word ("the recordings are confidential"), "this e-mail
# may contain confidential information" is a footer's.
_FOOTER_RE = re.compile(
    r"(?:this|the) (?:e-?mail|message|communication)(?: and any (?:attachments?|files?)"
    r"(?: transmitted with it)?)? (?:is|are|may be|may contain|contains?) (?:\w+ )?"
    r"(?:confidential|privileged|intended)"
    r"|intended (?:solely |only |exclusively )?for the (?:use of the )?"
    r"(?:addressee|recipient|individual|person|named)"
    r"|received (?:this|it|this (?:e-?mail|message|communication)) in error|notify the sender"
    r"|unauthori[sz]ed (?:use|review|disclosure|copying|distribution)"
    r"|consider the environment before printing|registered in england"
    # Registration details come with their number: "the company number" in a sentence is a
    # request's words (it made five sample requests vanish whole, footer to the end).
    r"|registered (?:office|number)\s*[:#]"
    r"|company (?:no\.?|number|registration(?: no\.?| number)?)\s*[:#]?\s*[a-z]{0,3}\s?\d"
    r"|vat (?:reg(?:istration)?\.?|no\.?|number|id)\s*(?:no\.?|number)?\s*[:#]?\s*[a-z]{0,3}\s?\d"
    r"|diese (?:e-?mail|nachricht)(?: und (?:alle |etwaige |ihre )?anhänge)? "
    r"(?:enthält|kann|ist|sind)\b[^.\n]{0,60}(?:vertraulich|rechtlich geschützt)"
    r"|nicht der (?:richtige|beabsichtigte|vorgesehene) (?:adressat|empfänger)"
    r"|(?:irrtümlich|versehentlich|fälschlicherweise) erhalten"
    r"|unbefugte (?:weitergabe|kopieren|nutzung|verwendung)"
    r"|geschäftsführ(?:er|erin|ung)\s*:|amtsgericht|registergericht|handelsregister|\bhrb\s*\d"
    r"|ust\.?-?id|steuer-?nr|sitz der gesellschaft|vorstand\s*:|aufsichtsrat\w*\s*:"
    r"|(?:denken sie|bitte denken sie) an die umwelt|bevor sie diese (?:e-?mail|mail) ausdrucken",
    re.IGNORECASE,
)
# Every match of _FOOTER_RE contains one of these (lower case): a substring test is many times
# cheaper than the pattern, and most lines hold none of them.
_FOOTER_STEMS = (
    "confidential",
    "privileged",
    "intended",
    "in error",
    "notify the sender",
    "unauthori",
    "before printing",
    "registered",
    "company n",
    "company r",
    "vat ",
    "vertraulich",
    "rechtlich geschützt",
    "adressat",
    "empfänger",
    "irrtümlich",
    "versehentlich",
    "fälschlicherweise",
    "unbefugte",
    "geschäftsführ",
    "gericht",
    "handelsregister",
    "hrb",
    "ustid",
    "ust-id",
    "ust.id",
    "ust.-id",
    "steuernr",
    "steuer-nr",
    "sitz der gesellschaft",
    "vorstand",
    "aufsichtsrat",
    "umwelt",
    "ausdrucken",
)
_MOBILE_RE = re.compile(
    r"(?:sent from|gesendet von|von meinem|get) (?:my )?(?:iphone|ipad|android|samsung|"
    r"mobile|smartphone|handy|outlook|mail für|mail for)\b[^\n]{0,40}",
    re.IGNORECASE,
)
# Headings and unfilled hints of the issue templates of GitHub, GitLab and Jira.
_TEMPLATE_HEADINGS = frozenset(
    {
        "is your feature request related to a problem? please describe.",
        "is your feature request related to a problem?",
        "is your feature request related to a problem",
        "describe the solution you'd like",
        "describe the solution you would like",
        "describe alternatives you've considered",
        "describe alternatives you have considered",
        "additional context",
        "describe the bug",
        "describe the feature",
        "feature description",
        "proposed solution",
        "alternatives considered",
        "alternatives",
        "steps to reproduce",
        "expected behavior",
        "expected behaviour",
        "actual behavior",
        "actual behaviour",
        "environment",
        "summary",
        "motivation",
        "problem",
        "solution",
        "context",
        "beschreibung",
        "problembeschreibung",
        "lösungsvorschlag",
        "gewünschte lösung",
        "alternativen",
        "zusätzlicher kontext",
        "weitere informationen",
    }
)
_TEMPLATE_HINT_RE = re.compile(
    r"a clear and concise description of|add any other context or screenshots"
    r"|ex\. i'm always frustrated when|if applicable, add screenshots",
    re.IGNORECASE,
)
_TEMPLATE_HINT_STEMS = ("concise", "any other context", "frustrated when", "add screenshots")
# Machine output: a line of a log ("2026-11-02 10:14:03 WARN ...", "Nov  2 10:14:03 pbx ...").
_LOG_LINE_RE = re.compile(
    r"\[?(?:\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}|[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}"
    r"|\d{1,2}:\d{2}:\d{2}[.,]\d+)"
)
_FENCE = "```"
_SIGNATURE_DELIMITER = re.compile(r"--\s*|—\s*")
# After a sign-off, a line this short with at most one function word is a signature line
# (a name, a role, an address, a phone number); "+1, we need this for 300 seats" is not.
_SIGNATURE_LINE_CHARS = 80
_WORD_RE = re.compile(r"[^\W\d_]+")


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, without its line break."""
    spans, start = [], 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        spans.append((start, start + len(stripped)))
        start += len(line)
    return spans


def _bare(line: str) -> str:
    """A line without markdown decoration, quote marks or surrounding blanks."""
    return line.strip().strip("#*_>` \t").strip()


def _is_footer(line: str) -> bool:
    lowered = line.lower()
    return any(stem in lowered for stem in _FOOTER_STEMS) and bool(_FOOTER_RE.search(line))


def _is_template_hint(line: str) -> bool:
    lowered = line.lower()
    return any(stem in lowered for stem in _TEMPLATE_HINT_STEMS) and bool(
        _TEMPLATE_HINT_RE.search(line)
    )


def _is_signature_line(bare: str, stop_words: frozenset[str]) -> bool:
    """A name, a role, an address, a phone number (footers and taglines are dropped already)."""
    if len(bare) > _SIGNATURE_LINE_CHARS:
        return False
    # Function words as sentences write them: in lower case ("IT" in a role is no "it").
    return sum(w in stop_words for w in _WORD_RE.findall(bare) if w.islower()) <= 1


def boilerplate_spans(text: str, stop_words: frozenset[str]) -> list[tuple[int, int]]:
    """Spans of ``text`` that frame the request rather than state it, in text order.

    ``stop_words`` (German and English) tell a signature line from a sentence.
    """
    if "\n" not in text:
        return []
    lines = _lines(text)

    def line_text(i: int) -> str:
        return text[lines[i][0] : lines[i][1]]

    bare = [_bare(line_text(i)) for i in range(len(lines))]
    content = [i for i, b in enumerate(bare) if b]
    if len(content) < 2:
        return []
    # Most texts hold no footer or template stem at all: then no line needs those patterns.
    lowered = text.lower()
    footers = any(stem in lowered for stem in _FOOTER_STEMS)
    hints = any(stem in lowered for stem in _TEMPLATE_HINT_STEMS)
    dropped: set[int] = set()
    # A greeting opens the text, or follows its subject line (a title composed above it).
    for i in content[:2]:
        if _GREETING_RE.fullmatch(bare[i]):
            dropped.add(i)
            break
    footer = False  # a legal footer runs on to the end of its paragraph
    fenced = False  # inside a fenced code block, fences included
    for i, line in enumerate(bare):
        opens_or_closes = line_text(i).lstrip().startswith(_FENCE)
        if fenced or opens_or_closes:
            dropped.add(i)
            fenced = fenced != opens_or_closes
            continue
        if not line:
            footer = False
            continue
        if _LOG_LINE_RE.match(line):
            dropped.add(i)
            continue
        if footers and _is_footer(line):
            footer = True
        if (
            footer
            or line.lower().rstrip(":") in _TEMPLATE_HEADINGS
            or (hints and _is_template_hint(line))
            or _MOBILE_RE.fullmatch(line)
        ):
            dropped.add(i)
    # The sign-off: a line that only takes leave, or a signature delimiter, with nothing but
    # signature lines, footers and perhaps more sign-offs below it. It goes with all that follows.
    cut = None
    for i in reversed(content[1:]):
        line = bare[i]
        if _SIGNATURE_DELIMITER.fullmatch(line_text(i).strip()) or _CLOSING_RE.fullmatch(line):
            cut = i
        elif i not in dropped and not _is_signature_line(line, stop_words):
            break
    if cut is not None:
        dropped.update(range(cut, len(lines)))
    return _merge([lines[i] for i in sorted(dropped)], text)


def _merge(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Join spans separated only by line breaks or blanks."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and not text[merged[-1][1] : start].strip():
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
