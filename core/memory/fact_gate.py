"""Whether a message is worth the fact-extraction model's call: a cheap test before the background model run.

With a model configured, every stored message would cost a second model request (money, rate limit, and
its CPU on the worker) to learn the person's facts, although most messages are questions and
requests about other things ("When is the standup tomorrow?", "Draft a note thanking the team"). A fact
about the person needs a reference to them ("I", "my", "we", ...) or an explicit cue ("remember", "from
now on"); a message is kept from the model only when every sentence of it is, recognisably in English,
a question, a request, a pleasantry or a statement about something else ("This is about item 4").

A missed fact costs more than a model call, so anything the test cannot judge goes to the model: a
message with letters of another script, with a first-person word of another language ("ich", "je",
"mijn", ...), with too few English function words to read as English (Spanish or Italian state facts
without a pronoun: "Vivo en Berlín"), or a sentence of another shape, such as the elliptical statements
"Sam here", "Name's Sam", "Based in Berlin btw" or "Had lunch with the CEO today". The deterministic rules
(`core.memory.facts_rules`) still read every message, whatever this says.

A pure function of the text, a few linear regular expressions and set look-ups (microseconds).
"""

from __future__ import annotations

import re


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


MAX_CHARS = 2000
"""A longer message goes to the model unjudged: the model reads all of it, and a statement may come late."""

_NOT_LATIN = re.compile(r"[^\W\d_a-zA-Z\u00c0-\u024f\u1e00-\u1eff]")
"""A letter outside the Latin script (Cyrillic, Greek, CJK, Arabic, ...): not judged here."""
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_CUE = re.compile(
    r"\b(?:remember|don't forget|do not forget|keep in mind|note that|make a note|take note|for future reference|"
    r"for the record|fyi|from now on|going forward|in future|in the future|by default|always|never|whenever|"
    r"every time|call me|my name|name's|name is)\b",
    re.IGNORECASE,
)
"""A note or a standing preference: "remember for this channel: ...", "from now on answer in French"."""

FIRST_PERSON = _set("i i'm i've i'd i'll im ive me my mine myself we we're we've we'd we'll us our ours ourselves")
OTHER_FIRST_PERSON = _set(
    # German, French, Spanish, Portuguese, Italian
    "ich mein meine meinen meinem meiner mich mir wir uns unser unsere bin "
    "je moi mon ma mes nous notre nos suis "
    "yo mi mis conmigo nosotros nosotras nuestro nuestra nuestros nuestras soy estoy "
    "eu meu minha meus minhas comigo nós nosso nossa sou estou "
    "io mio mia miei mie noi nostro nostra sono "
    # Dutch, Swedish, Norwegian, Danish, Finnish, Polish, Czech, Turkish
    "ik mijn mij wij ons onze jag mitt mina vi jeg meg mig "
    "minä minun olen meidän ja mój moja moje mnie jestem já můj moje jsem benim biz bizim"
)
"""First-person words of the Latin-script languages a workplace most often writes in. A collision with an
English word ("ja", "vi") only sends a message to the model; French "j'ai" and friends are caught apart."""
_RECIPIENT = _set("tell show give send get find help let walk")
"""Request verbs whose "me" is only the request's recipient ("tell me about X"), not a statement about them."""

ENGLISH = _set(
    "a an the this that these those it its it's there there's here here's is are was were be been being am "
    "do does did done have has had will would can could should shall may might must not no yes and or but "
    "if then so as of to in on at by for from with about into over under after before between through "
    "up down out off again what what's when where which who whom whose why how any some all each every "
    "you your you're he she they them their his her him one ones more most much many few other another "
    "please thanks thank ok okay hi hello hey just also too very than like next last today tomorrow"
)
"""English function words: a message with too few of them, these and the words below counted, is not judged
(not English)."""
MIN_ENGLISH_SHARE = 0.2

_LEAD_IN = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|yo|ok|okay|so|also|and|oh|well|good (?:morning|afternoon|evening)|actually|"
    r"sorry|please|just|thanks|thank you|cheers|great|cool|nice|perfect|got it|sure|bye|quick question|quick check)"
    r"\b[\s,!:-]*)+",
    re.IGNORECASE,
)
_INTERROGATIVE = _set("what what's whats when where where's which who who's whom whose why how how's")
_AUXILIARY = _set(
    "is are was were do does did can could would will should shall may might has have had isn't aren't don't "
    "doesn't didn't can't couldn't won't wouldn't shouldn't"
)
_QUESTION_SUBJECT = _set(
    "you it there this that these those the a an any anyone anybody someone somebody everyone he she they"
)
"""After an auxiliary, a subject that makes the sentence a question ("is there ...", "can you ..."); "Had
lunch with the CEO" or "Been at Acme for years" are the person's statements with the "I" left out."""
_REQUEST = _set(
    "draft write rewrite rephrase summarise summarize explain translate list give show tell find search look "
    "compare calculate compute convert suggest recommend describe define generate create make fix check "
    "proofread review outline brainstorm help send post draw format sort count estimate analyse analyze "
    "name pick choose shorten expand simplify add remove delete open close run let's lets"
)
"""Verbs that open a request. Not "use", "keep", "love", "need", "work": "Use Neovim for everything" or "Keep
answers short" are preferences, and "Love Rust" a statement with its "I" left out."""
_ABOUT_ELSE = _set("this that these those it it's its there there's here's he she they he's she's they're that's")
"""Subjects of a statement about something else ("This is about item 4", "It's raining")."""

_ENGLISH_EVIDENCE = ENGLISH | FIRST_PERSON | _INTERROGATIVE | _AUXILIARY | _REQUEST


def may_state_facts(message: str) -> bool:
    """Whether `message` may tell something worth remembering about its author, so worth the extraction
    model's call. False only for a message judged, in English, to hold nothing of the kind."""
    if len(message) > MAX_CHARS:
        return True
    text = message.replace("\u2019", "'").strip()
    if _NOT_LATIN.search(text) or _CUE.search(text):
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    if _mentions_author(words) or any(w in OTHER_FIRST_PERSON or w.startswith("j'") for w in words):
        return True
    sentences = [s for s in (_LEAD_IN.sub("", piece.strip()).strip(" ,") for piece in _SENTENCE_END.split(text)) if s]
    if not sentences:
        return False  # greetings and thanks alone, or no words
    if sum(w in _ENGLISH_EVIDENCE for w in words) < MIN_ENGLISH_SHARE * len(words):
        return True
    return not all(_about_something_else(s) for s in sentences)


def _mentions_author(words: list[str]) -> bool:
    """A first-person word, a request's recipient ("tell me") apart."""
    return any(w in FIRST_PERSON and not (w == "me" and i and words[i - 1] in _RECIPIENT) for i, w in enumerate(words))


def _about_something_else(sentence: str) -> bool:
    """A question, a request, or a statement whose subject is something else and that names nobody (a
    capitalised word after the first could be the author: "This is Sam from payments")."""
    if sentence.endswith("?"):
        return True
    words = [w.lower() for w in _WORD.findall(sentence)]
    if not words:
        return True
    first = words[0]
    if first in _INTERROGATIVE or first in _REQUEST:
        return True
    if first in _AUXILIARY and len(words) > 1 and words[1] in _QUESTION_SUBJECT:
        return True
    if first in _ABOUT_ELSE:
        return not any(w[:1].isupper() for w in _WORD.findall(sentence)[1:])
    return False
