"""Text normalisation shared by every engine: say numbers and symbols as words.

Engines read written forms in their own ways (piper: "$12.50" as "dollar
twelve point five zero", "25-30" with "dash"; hibari: "type C" as "type one
hundred", a 37-digit number crashes it). Before any engine runs, each word
the client sent is rewritten here into the words to speak, with num2words
spelling the numbers:

========================  ===========================================
class                      example -> spoken
========================  ===========================================
numbers                    ``1,234`` -> one thousand, two hundred and thirty-four;
                           ``-5`` -> minus five; ``3.14`` -> three point one four;
                           more than 15 digits -> digit by digit
years                      ``1995`` -> nineteen ninety-five (4 digits, 1100-2099)
ordinals                   ``21st`` -> twenty-first
currency                   ``$12.50`` -> twelve dollars and fifty cents;
                           ``$5 million`` -> five million dollars
percent                    ``50%`` -> fifty percent
dates                      ``04/05/2025``, ``2025-04-05`` -> April fifth, twenty twenty-five
times                      ``10:30`` -> ten thirty; ``5:00`` -> five o'clock; ``p.m.`` -> p m
ranges                     ``25-30`` -> twenty-five to thirty
fractions                  ``3/4`` -> three quarters
units                      ``10 km``, ``10km`` -> ten kilometers; ``20°C`` -> twenty degrees Celsius
versions                   ``Python 3.10``, ``v1.2.3`` -> three point ten, one point two point three
web and email addresses    ``www.example.com/docs`` -> w w w dot example dot com slash docs
single letters             ``type C`` -> type see
symbols                    ``&`` -> and, ``+`` -> plus; emoji and other pictographs dropped
========================  ===========================================

:func:`normalize` keeps the mapping: one list of spoken words per client
word, so word timings can be reported for the words the client sent
(:func:`speak_normalized`). Pure and deterministic.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from .engines.base import SpeechChunk, WordTiming

__all__ = ["normalize", "normalize_text", "speak_normalized", "MAX_SPELLED_DIGITS"]

#: Integers with more digits are read digit by digit ("ten duodecillion"
#: says nothing to a listener, and engines' own expansions break on them).
MAX_SPELLED_DIGITS = 15

_OPEN = "\"'([{\u201c\u2018\u00ab"
_CLOSE = "\"')]}\u201d\u2019\u00bb.,;:!?\u2026"
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "\u20ac": ("euro", "euros", "cent", "cents"),
             "\u00a3": ("pound", "pounds", "penny", "pence"), "\u00a5": ("yen", "yen", "", "")}
_SCALES = {"thousand", "million", "billion", "trillion"}
_SCALE_SUFFIX = {"k": "thousand", "m": "million", "bn": "billion", "b": "billion"}
_UNITS = {
    "km": ("kilometer", "kilometers"), "m": ("meter", "meters"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"), "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "l": ("liter", "liters"), "ml": ("milliliter", "milliliters"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "ms": ("millisecond", "milliseconds"), "s": ("second", "seconds"), "sec": ("second", "seconds"),
    "min": ("minute", "minutes"), "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"), "gb": ("gigabyte", "gigabytes"),
    "tb": ("terabyte", "terabytes"), "hz": ("hertz", "hertz"), "khz": ("kilohertz", "kilohertz"),
    "mhz": ("megahertz", "megahertz"), "ghz": ("gigahertz", "gigahertz"),
    "°c": ("degree Celsius", "degrees Celsius"), "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"), "kw": ("kilowatt", "kilowatts"), "w": ("watt", "watts"),
    "v": ("volt", "volts"), "%": ("percent", "percent"),
}
_VERSION_CUES = {"version", "v", "python", "release", "ios", "android", "java", "node", "ruby", "php",
                 "perl", "rust", "go", "windows", "macos", "ubuntu", "debian", "linux", "kernel",
                 "gcc", "clang", "chrome", "firefox", "api", "update", "firmware"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_LETTERS = {"B": "bee", "C": "see", "D": "dee", "E": "ee", "F": "ef", "G": "gee", "H": "aitch",
            "J": "jay", "K": "kay", "L": "el", "M": "em", "N": "en", "O": "oh", "P": "pee", "Q": "cue",
            "R": "ar", "S": "ess", "T": "tee", "U": "you", "V": "vee", "W": "double you", "X": "ex",
            "Y": "why", "Z": "zee"}
_SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at", "#": "number", "%": "percent",
            "/": "slash", "*": "star"}
_DENOMINATORS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_TLDS = ("com", "org", "net", "io", "dev", "edu", "gov", "co", "uk", "de", "fr", "ai", "app", "info")

_NUM = r"\d{1,3}(?:,\d{3})+|\d+"
_RE_INT = re.compile(rf"^(?:{_NUM})$")
_RE_NUMBER = re.compile(rf"^([-\u2212])?((?:{_NUM}))(?:\.(\d+))?$")
_RE_CURRENCY = re.compile(rf"^([-\u2212])?([$\u20ac\u00a3\u00a5])((?:{_NUM}))(?:\.(\d+))?(k|m|bn|b)?$", re.I)
_RE_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$", re.I)
_RE_DATE_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})$")
_RE_DATE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_RE_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(am|pm|a\.m\.|p\.m\.)?$", re.I)
_RE_RANGE = re.compile(r"^(\d+(?:\.\d+)?)[-\u2013](\d+(?:\.\d+)?)$")
_RE_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_RE_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+){1,3})$")
_RE_MULTIDOT = re.compile(r"^[vV]?\d+(?:\.\d+){2,}$")
_RE_NUM_UNIT = re.compile(r"^(\d+(?:\.\d+)?)(°[cCfF]?|[a-zA-Z]+(?:/h)?|%)$")
_RE_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$")
_RE_URL = re.compile(r"^(?:https?://|www\.)\S+$|^[\w-]+(?:\.[\w-]+)*\.(?:" + "|".join(_TLDS) + r")(?:/\S*)?$", re.I)
_RE_AMPM = re.compile(r"^(a\.m\.?|p\.m\.?|am|pm)$", re.I)


def _n2w(value: int, **kwargs: Any) -> str:
    from num2words import num2words  # imported lazily: only the server needs it

    return str(num2words(value, lang="en", **kwargs))


def _words(text: str) -> List[str]:
    """Split num2words' output into words (hyphens kept, commas dropped)."""
    return text.replace(",", "").split()  # "one thousand, two hundred": no pause inside a number


def _integer(digits: str) -> List[str]:
    digits = digits.replace(",", "")
    if len(digits.lstrip("0")) > MAX_SPELLED_DIGITS:
        return [_n2w(int(d)) for d in digits]
    return _words(_n2w(int(digits)))


def _digits(digits: str) -> List[str]:
    return [_n2w(int(d)) for d in digits]


def _number(sign: Optional[str], whole: str, frac: Optional[str]) -> List[str]:
    spoken = (["minus"] if sign else []) + _integer(whole)
    if frac:
        spoken += ["point"] + _digits(frac)
    return spoken


def _year_or_number(digits: str) -> List[str]:
    if len(digits) == 4 and 1100 <= int(digits) <= 2099:
        return _words(_n2w(int(digits), to="year"))
    return _integer(digits)


def _currency(match: re.Match[str], next_word: Optional[str]) -> Tuple[List[str], bool]:
    """Spoken currency (the bool is for :func:`_core`'s signature: always False)."""
    sign, symbol, whole, frac, suffix = match.groups()
    one, many, cent, cents = _CURRENCY[symbol]
    spoken = ["minus"] if sign else []
    scale = _SCALE_SUFFIX.get((suffix or "").lower())
    if scale or (next_word and next_word.lower().strip(_CLOSE) in _SCALES):
        # "$5 million": normalize() moves the unit after the next word.
        return spoken + _number(None, whole, frac) + ([scale] if scale else []) + [many], False
    amount = int(whole.replace(",", ""))
    spoken += _integer(whole) + [one if amount == 1 else many]
    if frac and cent and int(frac.ljust(2, "0")[:2]):
        value = int(frac.ljust(2, "0")[:2])
        spoken += ["and"] + _integer(str(value)) + [cent if value == 1 else cents]
    return spoken, False


def _date(month: int, day: int, year: str) -> Optional[List[str]]:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    year_words = _year_or_number(year if len(year) == 4 else "20" + year)
    return [_MONTHS[month - 1]] + _words(_n2w(day, to="ordinal")) + year_words


def _time(match: re.Match[str]) -> Optional[List[str]]:
    hours, minutes, seconds, ampm = match.groups()
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        return None
    spoken = _integer(hours)
    if m == 0:
        spoken += [] if ampm else ["o'clock"]
    elif m < 10:
        spoken += ["oh"] + _integer(minutes)
    else:
        spoken += _integer(minutes)
    if seconds and int(seconds):
        spoken += ["and"] + _integer(seconds) + ["seconds"]
    if ampm:
        spoken += [ampm.lower().replace(".", "")[0], "m"]
    return spoken


def _fraction(num: int, den: int) -> List[str]:
    if den in _DENOMINATORS:
        name = _DENOMINATORS[den][0 if num == 1 else 1]
    else:
        name = _n2w(den, to="ordinal") + ("" if num == 1 else "s")
    return _integer(str(num)) + _words(name)


def _version(text: str) -> List[str]:
    spoken: List[str] = []
    for i, part in enumerate(text.lstrip("vV").split(".")):
        spoken += (["point"] if i else []) + _integer(part)
    return spoken


def _address(text: str) -> List[str]:
    """Spell a web or email address: separators as words, letters as words."""
    text = re.sub(r"^https?://", "", text, flags=re.I).rstrip("/")
    spoken: List[str] = []
    for part in re.split(r"([./@:_\-?=&#])", text):
        if not part:
            continue
        if part in "./@:_-?=&#":
            spoken.append({".": "dot", "/": "slash", "@": "at", ":": "colon", "_": "underscore",
                           "-": "dash", "?": "question mark", "=": "equals", "&": "and",
                           "#": "hash"}[part])
        elif part.lower() == "www":
            spoken += ["w", "w", "w"]
        elif part.isdigit():
            spoken += _integer(part)
        else:
            spoken.append(part)
    return " ".join(spoken).split()


def _unit(value: str, unit: str) -> Optional[List[str]]:
    names = _UNITS.get(unit.lower())
    if names is None:
        return None
    whole, _, frac = value.partition(".")
    plural = not (whole == "1" and not frac)
    return _number(None, whole, frac or None) + names[1 if plural else 0].split()


def _drop_symbols(word: str) -> str:
    """Remove emoji, pictographs and joiners; keep letters, digits, punctuation
    (and unassigned or private code points: the engine decides about those)."""
    kept = []
    for ch in word:
        cat = unicodedata.category(ch)
        if ch == "\u00b0":
            pass  # the degree sign is read ("20\u00b0C")
        elif cat in ("So", "Cs", "Co", "Cn") or ch in "\u200d\ufe0f\ufe0e" or cat == "Sk" and ord(ch) > 0x2000:
            continue
        kept.append(ch)
    return "".join(kept)


def _split_punct(word: str) -> Tuple[str, str, str]:
    start, end = 0, len(word)
    while start < end and word[start] in _OPEN:
        start += 1
    while end > start and word[end - 1] in _CLOSE:
        end -= 1
    core = word[start:end]
    # Initials keep their last dot ("J.R.R."); "p.m." is spoken "p m" and
    # its dot stays punctuation (normalize() keeps it only at a sentence end).
    if core and word[end:].startswith(".") and re.fullmatch(r"(?:[a-zA-Z]\.)+[a-zA-Z]", core) \
            and not _RE_AMPM.match(core):
        end += 1
        core = word[start:end]
    return word[:start], core, word[end:]


def _core(core: str, prev: Optional[str], next_word: Optional[str]) -> Tuple[Optional[List[str]], bool]:
    """Spoken words for one bare token; True when it consumed ``next_word``'s unit."""
    lower_prev = (prev or "").lower().strip(_OPEN + _CLOSE)
    next_bare = (next_word or "").strip(_OPEN + _CLOSE)
    match = _RE_CURRENCY.match(core)
    if match:
        return _currency(match, next_word)
    match = _RE_DATE_US.match(core)
    if match:
        return _date(int(match[1]), int(match[2]), match[3]), False
    match = _RE_DATE_ISO.match(core)
    if match:
        return _date(int(match[2]), int(match[3]), match[1]), False
    match = _RE_TIME.match(core)
    if match:
        return _time(match), False
    match = _RE_ORDINAL.match(core)
    if match:
        return _words(_n2w(int(match[1]), to="ordinal")), False
    if _RE_MULTIDOT.match(core) or (_RE_VERSION.match(core) and (core[0] in "vV" or lower_prev in _VERSION_CUES)):
        return _version(core), False
    match = _RE_RANGE.match(core)
    if match:
        left, right = (_core(part, None, None)[0] for part in match.groups())
        return (left or [match[1]]) + ["to"] + (right or [match[2]]), False
    match = _RE_FRACTION.match(core)
    if match and int(match[2]) > 0:
        return _fraction(int(match[1]), int(match[2])), False
    match = _RE_NUM_UNIT.match(core)
    if match:
        spoken = _unit(match[1], match[2])
        if spoken:
            return spoken, False
    match = _RE_NUMBER.match(core)
    if match:
        sign, whole, frac = match.groups()
        plain = not sign and not frac and "," not in whole
        spoken = _year_or_number(whole) if plain else _number(sign, whole, frac)
        unit = _UNITS.get(next_bare.lower()) if next_bare and next_bare.lower() != "m" else None
        if unit and next_bare.lower() not in ("s", "h", "min", "v", "w", "l", "g"):
            return spoken, True
        return spoken, False
    if _RE_EMAIL.match(core) or _RE_URL.match(core):
        return _address(core), False
    if core in _LETTERS and not (next_bare[:1].isupper() and core == "I"):
        return [_LETTERS[core]], False
    if _RE_AMPM.match(core) and "." in core:
        return [core[0].lower(), "m"], False
    if core in _SYMBOLS:
        return [_SYMBOLS[core]], False
    if re.search(r"\d", core) and re.search(r"[^\W\d_]", core) and re.fullmatch(r"[\w]+", core):
        # "COVID19", "H2O": letters as written, digit runs as numbers.
        return [w for part in re.findall(r"\d+|\D+", core)
                for w in (_integer(part) if part.isdigit() else [part])], False
    if re.search(rf"\d{{{MAX_SPELLED_DIGITS + 1},}}", core):
        # A long digit run inside anything else is still read digit by digit.
        return re.sub(r"\d+", lambda m: " ".join(_integer(m[0])), core).split(), False
    return None, False


def normalize(words: Sequence[str]) -> List[List[str]]:
    """Return, for each of ``words``, the words to speak for it (maybe none).

    Punctuation around a word stays on its first and last spoken words, so
    pauses and sentence ends are kept. Never raises for any text.
    """
    out: List[List[str]] = []
    carry_unit: Optional[List[str]] = None  # a unit the previous number consumed
    for i, word in enumerate(words):
        prev = words[i - 1] if i else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        clean = _drop_symbols(word)
        if not clean.strip():
            out.append([])
            continue
        lead, core, trail = _split_punct(clean)
        if carry_unit is not None:
            spoken: Optional[List[str]] = carry_unit
            carry_unit = None
        elif core.lower() in _SCALES and out and out[-1] and out[-1][-1].rstrip(_CLOSE) in (
                "dollars", "euros", "pounds", "yen") and _RE_CURRENCY.match(_split_punct(prev or "")[1]):
            # "$5 million": the currency word moves after the scale.
            unit = out[-1].pop()
            spoken = [core, unit]
        else:
            try:
                spoken, takes_unit = _core(core, prev, nxt)
            except (ValueError, OverflowError, ArithmeticError):
                spoken, takes_unit = None, False  # leave it to the engine as written
            if takes_unit and nxt is not None:
                forms = _UNITS[_split_punct(nxt)[1].lower()]  # (singular, plural)
                carry_unit = forms[0 if core == "1" else 1].split()
        if (core and _RE_AMPM.match(core) and "." in core and trail.startswith(".")
                and nxt is not None and not nxt.lstrip(_OPEN)[:1].isupper()):
            trail = trail[1:]  # "5 p.m. if": the dot ends the abbreviation only
        if not core and clean != word:
            # Only a symbol and punctuation ("\U0001f389."): the punctuation
            # goes to the previous spoken word.
            if out and out[-1] and trail and not out[-1][-1].endswith(trail):
                out[-1][-1] += trail
            out.append([])
            continue
        if not spoken:
            spoken = [core or clean]
        spoken = [w for w in spoken if w]
        if lead:
            spoken[0] = lead + spoken[0]
        if trail:
            spoken[-1] = spoken[-1] + trail
        out.append(spoken)
    return out


def normalize_text(text: str) -> str:
    """Return ``text`` as the words to speak, joined by single spaces."""
    return " ".join(w for group in normalize(text.split()) for w in group)


def speak_normalized(synthesize: Callable[[str], Iterable[SpeechChunk]], text: str,
                     sample_rate: int) -> Iterator[SpeechChunk]:
    """Speak the normalised ``text`` and time the words the client sent.

    ``synthesize`` is an engine's ``synthesize`` bound to a voice. Each
    client word is timed from the start of its first spoken word to the end
    of its last one in the same chunk; a word with nothing to speak (an
    emoji) gets zero length where it stood; text with nothing to speak gives
    no audio. Blocks while the engine runs.
    """
    words = text.split()
    groups = normalize(words)
    spoken = " ".join(w for group in groups for w in group)
    # owner[k]: index of the client word whose spoken words include spoken word k
    owner = [i for i, group in enumerate(groups) for _ in group]
    timed = 0  # client words timed so far
    k = 0  # spoken words seen
    for chunk in synthesize(spoken) if spoken else ():
        timings: List[WordTiming] = []
        for timing in chunk.words:
            i = owner[k] if k < len(owner) else len(words) - 1
            k += 1
            if i < timed:  # more spoken words of the client word timed last
                if timings:
                    prev = timings[-1]
                    end = timing.start + timing.duration
                    timings[-1] = WordTiming(prev.text, prev.start, max(prev.duration, end - prev.start))
                continue
            while timed < i:  # client words with nothing to speak
                at = timings[-1].start + timings[-1].duration if timings else timing.start
                timings.append(WordTiming(words[timed], at, 0.0))
                timed += 1
            timings.append(WordTiming(words[i], timing.start, timing.duration))
            timed = i + 1
        if k >= len(owner) and timings:
            # The last spoken word is out: unspoken words after it end there.
            at = timings[-1].start + timings[-1].duration
            timings += [WordTiming(w, at, 0.0) for w in words[timed:]]
            timed = len(words)
        yield SpeechChunk(chunk.pcm, timings)
    if timed < len(words):  # nothing was speakable: no audio, the words take no time
        yield SpeechChunk(b"", [WordTiming(w, 0.0, 0.0) for w in words[timed:]])
