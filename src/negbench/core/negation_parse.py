"""A rule-based parser of English negation in captions: what a caption affirms, and which
object phrases it says are absent.

    >>> parse_negation("This image features a cat, but not a dog.")
    NegationParse(text='This image features a cat, but not a dog.', affirmed='This image features a cat.',
                  negated=('dog',), cues=('not',))

Used by the training-free negation-aware scorers (negbench.models.negaware), which embed the
affirmed part and the negated objects separately. Scope of the rules (each tested in
tests/test_negation_parse.py on every NegBench template set, the extra wording sets and
paraphrase-like patterns):

- the object follows the cue: "no X", "there is no / there isn't / there are no X",
  "does not feature / contain / show / have X" (any auxiliary + not + a transitive verb: "you
  cannot see X", "you won't find X"), "not X" ("..., but not X"), "not a single X", "without X",
  "lacks / lacking X", "free of (any) X", "devoid of X", "minus X", "except (for) X",
  "excluding X", "no sign / trace of X", "neither X nor Y", "Not pictured: X";
- the object precedes the cue: "X is not in the image / there / here", "..., but X is not.",
  "X is absent / missing", "X does not appear", "X cannot be seen";
- an attribute: "the car is not red", "a car that is not red" (negated: "red car"; affirmed: "the car").

Lists continue the scope with "or" / "nor" (and with "and" after a verb cue or "without": "without
a dog and a cat" negates both; "no dog and a cat" negates only the dog). The affirmed part is the
caption with each negated span removed, and, in a caption that negates something, every clause left
with no content word ("This image.", "in the picture") dropped; "" when nothing is affirmed. A
caption without negation is returned unchanged (affirmed == text, no negated objects).

Rules, not a grammar: a caption outside these patterns is read as affirmative, and the negated
object is the phrase up to the next clause boundary, not a syntactic noun phrase.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PARSER_VERSION = "rules-1"  # part of every negation-aware model identity: bump when a rule changes

# words that carry no content of their own in a caption: the media frame, auxiliaries, generic
# verbs of showing, function words. A clause of only these says nothing once its negation is gone.
FRAME_WORDS = frozenset("""
a an the this that these those it its there here you we i one
image images picture pictures photo photos photograph scene video clip frame shot view pic
is are was were be been being am has have had can could may might will would should do does did
feature features featuring featured show shows showing shown depict depicts depicting contain contains
containing include includes including see seen find found appear appears appearing visible present
pictured exist exists sight anywhere else anything everything something any all some just only also
in on at of from within inside with and but or nor so to as
""".split())
DETERMINERS = ("a", "an", "the", "any", "some", "single", "one", "other")
# words that end an object phrase (the clause goes on with a verb, a place, a conjunction)
_NP_STOP = frozenset("""
in on at from inside within near here there anywhere anymore whatsoever nowhere around
is are was were be can could may might will would does do did has have appears appear appearing
visible present shown pictured seen found in sight to but and or nor with that which who whose
while as just either so because though although where when
""".split())
_LIST_OR = frozenset({"or", "nor"})
# after "X is not ...": a place / presence word means X is absent; anything else is an attribute
_PRESENCE = frozenset("""
in on at there here present visible shown pictured seen found included anywhere around part inside
within nowhere featured depicted
""".split())
_INTRANSITIVE = ("appear", "appears", "exist", "exists", "show up", "shows up")
_AUX = r"(?:does|do|did|can|could|will|would|should|may|might)"
_NOT = r"(?:\s+not|n't)"
_SIGN_OF = r"(?:\s+any)?(?:\s+(?:a\s+)?(?:sign|trace|hint|evidence)s?\s+of)?(?:\s+any)?\b"
_COLON_CUES = re.compile(r"^(?:not (?:pictured|shown|present|visible|included|depicted)|absent|missing|excluded)$",
                         re.IGNORECASE)


@dataclass(frozen=True)
class NegationParse:
    text: str                    # the caption as given
    affirmed: str                # what it affirms ("" when it only negates)
    negated: tuple[str, ...]     # the negated object phrases, determiners dropped, in order
    cues: tuple[str, ...]        # the negation cue of each negated phrase (lower case)

    @property
    def has_negation(self) -> bool:
        return bool(self.negated)


@dataclass(frozen=True)
class _Cue:
    name: str
    pattern: re.Pattern
    kind: str          # "after": the object follows; "before": the clause's subject is negated;
                       # "copula": "X is not ..." (presence or attribute); "verb": aux + not + verb
    lists_and: bool = False   # does "and" continue the negated list after this cue


def _c(name, regex, kind, lists_and=False) -> _Cue:
    return _Cue(name, re.compile(regex, re.IGNORECASE), kind, lists_and)


# Earliest match wins; at the same position the first listed (the longer cue) wins.
_CUES = (
    _c("there is no", rf"\bthere(?:'s|\s+is|\s+are|\s+was|\s+were)(?:\s+not|\s+no|n't){_SIGN_OF}", "after"),
    _c("there is no", rf"\bthere\s+(?:isn't|aren't|wasn't|weren't){_SIGN_OF}", "after"),
    _c("no sign of", r"\bno\s+(?:sign|trace|hint|evidence)s?\s+of(?:\s+any)?\b", "after"),
    _c("not a single", r"\bnot\s+(?:a\s+single|any|one)\b", "after"),
    _c("cannot be seen", r"\b(?:cannot|can't|can\s+not|could\s+not|couldn't)\s+be\s+(?:seen|found|spotted)\b",
       "before"),
    _c("does not appear", rf"\b{_AUX}{_NOT}\s+(?:appear|exist|show\s+up)\b", "before"),
    _c("does not feature", rf"\b(?:{_AUX}{_NOT}|cannot|won't|can\s+not)\s+(?!be\b)[a-z]+\b", "verb", True),
    _c("is absent", r"\b(?:is|are|was|were)\s+(?:absent|missing|nowhere(?:\s+to\s+be\s+(?:seen|found))?)\b", "before"),
    _c("is not", r"\b(?:is|are|was|were)(?:\s+not|n't)\b", "copula"),
    _c("without", r"\bwithout(?:\s+any)?\b", "after", True),
    _c("absence of", r"\b(?:absence|lack)\s+of(?:\s+any)?\b", "after", True),
    _c("lacks", r"\black(?:s|ing)?\b", "after", True),
    _c("free of", r"\b(?:free|devoid)\s+of(?:\s+any)?\b", "after", True),
    _c("minus", r"\bminus\b", "after", True),
    _c("except", r"\b(?:except(?:\s+for)?|excluding|other\s+than)\b", "after", True),
    _c("neither", r"\bneither\b", "after", True),
    _c("nor", r"\bnor\b", "after", True),
    _c("not", r"\bnot\b(?!\s+only\b)", "after"),
    _c("no", r"\bno\b(?!\s+(?:longer|one|doubt|matter|more|less|way)\b)", "after"),
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
# clause boundaries: sentence punctuation, ':' and ';', commas, and 'but' (which always starts a new clause)
_CLAUSE_SPLIT = re.compile(r"[.!?;:,]+|\bbut\b", re.IGNORECASE)


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _content(words) -> bool:
    return any(w.lower() not in FRAME_WORDS for w in words)


def _strip_determiners(words: list[str]) -> list[str]:
    while words and words[0].lower() in DETERMINERS:
        words = words[1:]
    return words


# a rule-based stand-in for a part-of-speech tagger: common caption verbs end an object phrase
# ("a man with no hat rides a bike" negates "hat", not "hat rides a bike")
_VERBS = frozenset("""
sits stands rides walks runs lies lays holds plays eats looks flies swims jumps waits drives parks
grows hangs rests sleeps stays leans carries wears faces covers fills moves goes comes makes takes
sit stand ride walk run lie hold play eat look fly swim jump wait drive park grow hang rest sleep
""".split())
_ING_NOUNS = frozenset("building painting clothing ceiling thing string wing swing ring king icing "
                       "railing awning topping frosting bedding siding".split())


def _looks_like_verb(word: str) -> bool:
    return word in _VERBS or (word.endswith("ing") and len(word) > 5 and word not in _ING_NOUNS)


def _phrases_after(clause: str, start: int, lists_and: bool) -> tuple[list[str], int]:
    """Object phrases from clause[start:]: words up to a stop word; 'or'/'nor' (and 'and' when
    `lists_and`) start the next phrase. -> (phrases, end offset in the clause)."""
    phrases, current, end = [], [], start
    for m in _WORD.finditer(clause, start):
        w = m.group().lower()
        between = clause[end:m.start()]
        if between.strip(" ") and current:     # punctuation inside the clause (e.g. an apostrophe-less gap)
            break
        if w in _LIST_OR or (lists_and and w == "and"):
            if current:
                phrases.append(current)
                current = []
            end = m.end()
            continue
        if w in _NP_STOP or (current and _looks_like_verb(w)):
            break
        if w in ("neither", "no", "not") and current:
            break
        if w in ("neither", "no", "not", "any"):
            end = m.end()
            continue
        current.append(m.group())
        end = m.end()
        if len(current) >= 6:
            break
    if current:
        phrases.append(current)
    out = [" ".join(_strip_determiners(p)) for p in phrases]
    return [p for p in out if p], end


def _subject_before(clause: str, end: int) -> tuple[str, int]:
    """The subject phrase that ends at clause[end]: the words after the last conjunction; its start."""
    words = list(_WORD.finditer(clause[:end]))
    start = len(words)
    while start > 0 and words[start - 1].group().lower() not in ("and", "or", "but", "while", "that", "which"):
        start -= 1
    subject = words[start:]
    if not subject:
        return "", end
    names = _strip_determiners([w.group() for w in subject])
    return " ".join(names), subject[0].start()


@dataclass
class _Span:
    start: int
    end: int
    negated: list[str]
    cue: str


def _next_span(clause: str, pos: int) -> _Span | None:
    """The first negation in clause[pos:] that names an object, as a span to delete."""
    found = []
    for order, cue in enumerate(_CUES):
        m = cue.pattern.search(clause, pos)
        if m:
            found.append((m.start(), order, cue, m))
    for _, _, cue, m in sorted(found, key=lambda f: (f[0], f[1])):
        span = _apply(clause, cue, m)
        if span is not None:
            return span
    return None


def _apply(clause: str, cue: _Cue, m: re.Match) -> _Span | None:
    if cue.kind == "after":
        names, end = _phrases_after(clause, m.end(), cue.lists_and)
        return _Span(m.start(), end, names, cue.name) if names else None
    if cue.kind == "verb":
        verb = m.group().split()[-1].lower()
        if verb.endswith("n't") or verb in ("not",):
            return None
        names, end = _phrases_after(clause, m.end(), cue.lists_and)
        return _Span(m.start(), end, names, cue.name) if names else None
    if cue.kind == "before":
        subject, start = _subject_before(clause, m.start())
        return _Span(start, m.end(), [subject], cue.name) if subject else None
    # copula: "X is not in the image" / "X is not." (presence) or "X is not red" (attribute)
    after = _WORD.match(clause[m.end():].lstrip()) if clause[m.end():].strip() else None
    pre = clause[:m.start()].rstrip()
    relative = next((r for r in ("that", "which", "who") if pre.lower().endswith(" " + r)), None)
    # "a car that is not red": the subject is before the relative pronoun, which goes with the negation
    subject, start = _subject_before(clause, len(pre) - len(relative) if relative else m.start())
    following = after.group().lower() if after else None
    if following in DETERMINERS:              # "it is not a dog": the object follows
        names, end = _phrases_after(clause, m.end(), False)
        return _Span(m.start(), end, names, cue.name) if names else None
    if not subject:
        return None
    if following is None or following in _PRESENCE:
        return _Span(start, m.end(), [subject], cue.name)
    # an attribute: "the car is not red" -> negated "red car", the subject stays affirmed
    head = subject.split()[-1]
    attr_end = m.end() + (len(clause[m.end():]) - len(clause[m.end():].lstrip())) + after.end()
    keep_from = len(pre) - len(relative) if relative else m.start()
    return _Span(keep_from, attr_end, [f"{after.group()} {head}"], "is not (attribute)")


def _clauses(text: str) -> list[tuple[int, int]]:
    """(start, end) of each clause; a separator belongs to the clause it follows."""
    bounds, start = [], 0
    for m in _CLAUSE_SPLIT.finditer(text):
        if m.group().lower() == "but":   # 'but' opens the next clause
            bounds.append((start, m.start()))
            start = m.start()
        else:
            bounds.append((start, m.end()))
            start = m.end()
    if start < len(text):
        bounds.append((start, len(text)))
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def _clause_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text)]


_LEAD_TRIM = re.compile(r"^[\s,;:.!?]*(?:(?:but|and|or|while|whereas|just|so|then)\b[\s,;:]*)*", re.IGNORECASE)
_TAIL_TRIM = re.compile(r"(?:[\s,;:]*\b(?:but|and|or|while|whereas|with|so)\b)*[\s,;:]*$", re.IGNORECASE)


_AND_TRIM = re.compile(r"(?:[\s,;:]*\b(?:but|and|or|while|whereas)\b)*[\s,;:]*$", re.IGNORECASE)


def _join_kept(kept: list[str]) -> str:
    """The text left around the deleted spans of one clause. A piece followed by 'and ...' keeps a
    trailing 'with' ("a beach with | and people swimming" -> "a beach with people swimming");
    otherwise the preposition went with the negation ("a man with | rides a bike")."""
    raw, kept = kept, [_LEAD_TRIM.sub("", k) if i else k for i, k in enumerate(kept)]
    out = []
    for i, k in enumerate(kept):
        more = any(_tidy(rest) for rest in kept[i + 1:])
        listed = more and re.match(r"\s*(?:,\s*)?and\b", raw[i + 1], re.IGNORECASE)
        k = _AND_TRIM.sub("", k) if listed else _TAIL_TRIM.sub("", k)
        k = re.sub(r"\s+", " ", k).strip(" .!?")
        if k:
            out.append(k)
    return " ".join(out)


def _tidy(piece: str) -> str:
    piece = _LEAD_TRIM.sub("", piece)
    piece = _TAIL_TRIM.sub("", piece)
    return re.sub(r"\s+", " ", piece).strip(" .!?")


@lru_cache(maxsize=65536)
def parse_negation(text: str) -> NegationParse:
    """The affirmed part and the negated objects of one caption (pure; cached)."""
    clean = _normalise(text)
    pieces: list[str] = []
    negated: list[str] = []
    cues: list[str] = []
    colon_negates = False
    for s, e in _clauses(clean):
        clause = clean[s:e]
        body = clause.rstrip(".!?;:, ")
        if colon_negates:   # "Not pictured: a dog, a cat."
            names, _ = _phrases_after(body, 0, True)
            if names:
                negated += names
                cues += ["not pictured"] * len(names)
                if clause.rstrip().endswith(":"):
                    colon_negates = False
                continue
        if _COLON_CUES.match(_tidy(body)) and clause.rstrip().endswith(":"):
            colon_negates = True
            continue
        colon_negates = False
        kept, pos, cut = [], 0, False
        while (span := _next_span(body, pos)) is not None:
            kept.append(body[pos:span.start])
            negated += span.negated
            cues += [span.cue] * len(span.negated)
            pos, cut = span.end, True
        kept.append(body[pos:])
        if cut:
            piece = _join_kept(kept)
        else:
            piece = _tidy(body)
        if piece:
            pieces.append(piece)
    if not negated:
        return NegationParse(text, text, (), ())
    pieces = [p for p in pieces if _content(_clause_words(p))]
    return NegationParse(text, _sentence(pieces, clean), tuple(negated), tuple(cues))


def _sentence(pieces: list[str], original: str) -> str:
    if not pieces:
        return ""
    out = ", ".join(pieces)
    out = out[:1].upper() + out[1:]
    end = original.rstrip()[-1:]
    return out + (end if end in ".!?" else "")


def single_negated_object(text: str | None) -> str | None:
    """The one object a caption says is absent ("This image does not feature a dog." -> "dog");
    None when it negates nothing or several objects (no single culprit to count an error against)."""
    if not text:
        return None
    negated = parse_negation(str(text)).negated
    return negated[0] if len(negated) == 1 else None
