"""Detectors for what the reporter wrote: errors, reproductions, code pointers, the kind of ask.

Each detector returns `Finding`s (a signal name, a short quote, a trust factor); the engine
turns them into weighted `Signal`s. Patterns use bounded repetition only (no nested
quantifiers), so adversarial text cannot make them backtrack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.triage.text import (
    Part,
    Prepared,
    clip,
    description_words,
    find_word,
    lower,
    snippet,
)

if TYPE_CHECKING:
    from bot.github.trees import RepoTree


@dataclass(frozen=True)
class Finding:
    name: str
    evidence: str
    factor: float = 1.0


Hit = tuple[Part, "re.Match[str]"]

# Patterns named *_RE run over lower-cased text (Part.low / Part.low_prose), are compiled
# without re.IGNORECASE and do not start with \b, so the engine can skip ahead quickly;
# `find_word` checks the left word boundary instead.
TRACEBACK_HEADER_RE = re.compile(r"Traceback \(most recent call last\)")
FRAME_RE = re.compile(
    r"File (?:\"[^\"\n]{1,300}\", line \d{1,7}|[~/][^\n,]{1,300}\.py:\d{1,7}, in )"
)
EXCEPTION_NAME_RE = re.compile(r"(?:Error|Exception)(?::[ \t]{0,4}\S|[ \t]{0,2}\()")
ERROR_COLON_RE = re.compile(r"(?:error|exception|fatal)[ \t]{0,2}:[ \t]{0,4}[\w'\"`]")
# Code-like lines in a fenced block or a reproduction section (not traceback frames). Matched
# against a line without its indent (at most MAX_CODE_INDENT); the look-behind lets a scan
# over a long run of word characters skip ahead instead of trying every position.
CODE_LINE_RE = re.compile(
    r"(?<![\w.\[\]'\",])(?:import\s[\w.]{1,80}|from\s[\w.]{1,80}\s{1,4}import\s"
    r"|[\w.\[\]'\",]{1,80}\s{0,4}=\s{0,4}[\w\"'\[({-]"
    r"|[\w.]{1,80}\("
    r"|\$?\s{0,4}(?:python3? \S{1,120}\.py|python3? -m \w|pip3? install|vllm serve|torchrun\s|accelerate launch|deepspeed\s|export \w{1,60}=|CUDA_VISIBLE_DEVICES=))"
)
NOT_CODE_LINE_RE = re.compile(r"(?:File |-{2,}>|\d{1,5}\s{2})")
MAX_CODE_INDENT = 12
MAX_CODE_LINES = 400
REPRO_HEADING_RE = re.compile(
    r"(?:reproduction|to reproduce|steps to reproduce|reproducer|minimal (?:example|reproduction|code)|code to reproduce)"
)
HEADING_LINE_RE = re.compile(r"^\s{0,3}#{1,6}\s", re.M)
NOTEBOOK_LINK_RE = re.compile(
    r"(?:colab\.research\.google\.com|gist\.github\.com|kaggle\.com/code)/\S"
)
LINE_LINK_RE = re.compile(
    r"github\.com/[\w.-]{1,100}/[\w.-]{1,100}/blob/[^\s#)\]>\"']{1,300}#L\d{1,7}"
)
PY_SUFFIX_RE = re.compile(r"\.py\b")
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
MAX_PATHS = 50
BACKTICK_IDENT_RE = re.compile(r"`([A-Za-z_][\w.]{1,80}(?:\(\))?)`")
SNAKE_IDENT_RE = re.compile(r"(?<![\w-])[a-z][a-z0-9]{0,40}_[a-z0-9_]{1,60}(?![\w-])")
DOTTED_CALL_RE = re.compile(r"\b[A-Za-z_]\w{0,40}\.[a-z_]\w{0,60}\(")
VERSION_RE = re.compile(
    r"(?:version|python|torch|pytorch|cuda|rocm|transformers|peft|vllm|accelerate|bitsandbytes|trl|diffusers"
    r"|datasets|tokenizers|safetensors|jax|numpy|triton)\b[^\n\d]{0,24}v?\d{1,3}\.\d{1,4}"
    r"|==\s?\d{1,3}\.\d{1,4}|collect_env|transformers-cli env|pip (?:list|freeze)\b"
)
SCOPED_ASK_RE = re.compile(
    r"typo\b|missing (?:entry|import|argument|parameter|key|check|docstring|documentation|docs|type hint|export)\b"
    r"|(?:wrong|incorrect|misleading|unclear|confusing|outdated) (?:error )?(?:message|docstring|documentation|docs|example|type hints?|default|warning)\b"
    r"|(?:doc|docs|documentation|docstring) (?:is|are|says?) (?:wrong|outdated|missing|incorrect|misleading)\b"
    r"|mimic\b|(?:similar|analogous) to the existing\b|like the existing\b"
)
FIX_PROPOSED_RE = re.compile(
    r"should (?:just |simply )?be (?:changed to |replaced (?:with|by) )?`"
    r"|the fix (?:is|would be|should be)\b|(?:proposed|suggested|possible) (?:fix|solution|patch)\b"
    r"|instead of `|replac(?:e|ing) `[^`\n]{1,80}` (?:with|by)\b|(?:a|one) (?:simple |easy )?fix (?:is|would be)\b"
)
IMAGE_RE = re.compile(
    r"<img\s|!\[[^\]\n]{0,200}\]\(|user-images\.githubusercontent\.com|github\.com/user-attachments/|/assets/\d"
)
TITLE_TAG_RE = re.compile(r"^\s{0,4}\[([^\]\n]{1,40})\]\s{0,4}:?")
# The title is short (capped), so these may use \b and re.I.
QUESTION_TITLE_RE = re.compile(
    r"^(?:how (?:to|can|do|does|should|would)|is (?:it|there) (?:possible|a way)|can i|could i|"
    r"what is the (?:best|right|recommended|correct)|which)\b"
    r"|^(?:how|what|where|which|is|are|can|could|does|do|should)\b[^\n]{0,300}\?\s{0,4}$",
    re.I,
)
DESIGN_TITLE_RE = re.compile(
    r"\bsupport(?:s|ed|ing)?\b|\bnew (?:backend|platform|device|model|architecture|method|algorithm|quantization|optimizer|kernel|api)\b"
    r"|\bintegrat(?:e|ion)\b|\bport(?:ing)? to\b",
    re.I,
)
FEATURE_TITLE_START_RE = re.compile(
    r"^(?:add|adding|support|request|enable|implement|allow)\b", re.I
)
FEATURE_HEADING_RE = re.compile(
    r"^\s{0,3}#{1,6}\s{0,4}(?:\W{0,4}\s{0,2})?(?:feature request|the feature, motivation|motivation)\b",
    re.I | re.M,
)
DOCS_TITLE_RE = re.compile(r"\b(?:docs?|documentation|docstrings?|readme|tutorial)\b", re.I)

# A design effort in the reporter's words: an RFC or a proposal, decisions still open.
DESIGN_TITLE_WORD_RE = re.compile(r"\b(?:rfc|proposal|design doc|roadmap|tracking issue)\b", re.I)
DESIGN_TEXT_RE = re.compile(
    r"(?:we|you|i|they|someone) (?:need|have|has|want) to (?:decide|agree on|figure out how)\b"
    r"|(?:needs?|requires?|calls? for|would need) (?:a |an |some )?(?:design|rfc|proposal|decision)\b"
    r"|design (?:doc|document|discussion|decision|proposal)s?\b|open (?:design )?questions?:"
    r"|(?:draft|write|put together|share|propose) (?:a|an|the) (?:design|rfc|proposal)\b"
    r"|(?:several|multiple|a few|many) (?:approaches|options|designs)\b"
)
# A result that is wrong without any exception: values, shapes, dtypes, outputs vs expected.
WRONG_RESULT_RE = re.compile(
    r"(?:wrong|incorrect|different|inconsistent|mismatch(?:ed|ing)?|unexpected|garbage|corrupted?)"
    r" (?:results?|outputs?|values?|shapes?|dtypes?|logits|predictions?|numbers|loss(?:es)?"
    r"|gradients?|answers?|tokens|generations?|scores?|weights)\b"
    r"|(?:results?|outputs?|values?|shapes?|dtypes?|logits|predictions|numbers|loss|gradients)"
    r" (?:are|is|look|looks|seem|seems|become|becomes) (?:all |completely |totally )?"
    r"(?:wrong|incorrect|off|different|inconsistent|nans?|infs?|zeros?)\b"
    r"|(?:returns?|produces?|outputs?|gives?|yields?|becomes?|is|are) (?:all |only )?(?:nans?|infs?|zeros)\b"
    r"|(?:expected|should (?:be|return|give|output))[^\n]{0,100}\b(?:but (?:got|get|it|the|i|we)|got|instead)\b"
    r"|(?:don'?t|do not|does not|doesn'?t) match(?:es)? (?:the )?(?:expected|reference|original)\b"
    r"|mismatched elements\b|not close\b|silently (?:ignor|drop|produc|return|chang|cast|overwrit)"
    r"|(?:precision|accuracy) (?:drop|loss|degradation)\b"
)

QUESTION_TAGS = {"usage", "question", "help", "how to", "q&a"}
DECISION_TAGS = {"rfc", "proposal", "roadmap", "discussion", "new model"}
FEATURE_TAGS = {"feature", "feature request", "enhancement", "new model"}
DOCS_TAGS = {"doc", "docs", "documentation"}


def first_hit(
    regex: re.Pattern[str], parts: Iterable[Part], field: str = "low", *, word: bool = True
) -> Hit | None:
    """First match in the given field of the parts; word patterns must start a word."""
    for part in parts:
        text = getattr(part, field)
        match = find_word(regex, text) if word else regex.search(text)
        if match:
            return part, match
    return None


def quote(part: Part, match: re.Match[str]) -> str:
    """Evidence for a match found in any of a part's fields."""
    found = match.group(0)
    if match.string in (part.text, part.low) and len(match.string) == len(part.text):
        start = match.start()
    else:
        start = part.low.find(lower(found))
        if start < 0:
            return f"{part.where}: {clip(found)}"
    return snippet(part, start, start + len(found))


def _finding(name: str, hit: Hit, factor: float = 1.0) -> Finding:
    part, match = hit
    return Finding(name, quote(part, match), factor)


def title_tag(title: str) -> str:
    """The template tag of a title, '[Bug]: ...' -> 'bug'."""
    match = TITLE_TAG_RE.match(title)
    return " ".join(match.group(1).lower().split()) if match else ""


def bare_title(title: str) -> str:
    return TITLE_TAG_RE.sub("", title, count=1).strip()


def has_traceback(parts: list[Part]) -> Hit | None:
    for part in parts:
        header = TRACEBACK_HEADER_RE.search(part.text)
        if header:
            return part, header
        frames = FRAME_RE.finditer(part.text)
        first, second = next(frames, None), next(frames, None)
        if first and second:
            return part, first
    return None


def error_message(parts: list[Part]) -> Hit | None:
    """An exception line ('KeyError: ...', 'ValueError(') or 'error: ...' in the text."""
    for part in parts:
        for i, match in enumerate(EXCEPTION_NAME_RE.finditer(part.text)):
            if i >= MAX_PATHS:
                break
            start = match.start()
            while start > 0 and match.start() - start < 40 and part.text[start - 1].isalnum():
                start -= 1
            if part.text[start].isupper() and (start == 0 or part.text[start - 1] not in "_"):
                return part, match
        colon = find_word(ERROR_COLON_RE, part.low)
        if colon:
            return part, colon
    return None


def _code_line(lines: list[str]) -> str | None:
    for line in lines[:MAX_CODE_LINES]:
        code = line.lstrip()
        if len(line) - len(code) > MAX_CODE_INDENT:
            continue
        if CODE_LINE_RE.match(code) and not NOT_CODE_LINE_RE.match(code):
            return line
    return None


def _repro_in_section(part: Part) -> str | None:
    """Unfenced code under a 'Reproduction' heading (many templates do not fence it)."""
    heading = find_word(REPRO_HEADING_RE, part.low_prose)
    if not heading:
        return None
    following = HEADING_LINE_RE.search(part.prose, heading.end())
    end = following.start() if following else len(part.prose)
    return _code_line(part.prose[heading.end() : end].splitlines()[1:])


def reproduction(parts: list[Part]) -> Finding | None:
    for part in parts:
        line = _code_line(part.code.splitlines()) or _repro_in_section(part)
        if line:
            return Finding("reproduction", f"{part.where}: {clip(line)}")
    hit = first_hit(NOTEBOOK_LINK_RE, parts, word=False)
    return _finding("reproduction", hit) if hit else None


def _in_package(path: str, packages: tuple[str, ...]) -> bool:
    padded = "/" + path.lower().lstrip("./")
    return padded.startswith("/src/") or any(f"/{name}/" in padded for name in packages)


def python_paths(text: str) -> list[tuple[int, int]]:
    """Spans of '.py' paths: found from the suffix backwards, so long runs cannot backtrack."""
    spans: list[tuple[int, int]] = []
    for i, match in enumerate(PY_SUFFIX_RE.finditer(text)):
        if i >= MAX_PATHS:
            break
        start = match.start()
        while start > 0 and match.start() - start < 300 and text[start - 1] in _PATH_CHARS:
            start -= 1
        if start < match.start():
            spans.append((start, match.end()))
    return spans


def repo_path(
    text: str, packages: tuple[str, ...], tree: RepoTree | None = None
) -> tuple[int, int, str] | None:
    """First path into the repository's own code (not a user script or a dependency).

    With the tree: a path the repository has (a traceback through site-packages/pkg/x.py
    counts when the tree has pkg/x.py or src/pkg/x.py); the repository path is returned.
    Without one: a path inside a package named in `packages`, or under src/.
    """
    for start, end in python_paths(text):
        path = text[start:end]
        if tree is not None:
            found = tree.resolve(path)
            if found:
                return start, end, found
        elif _in_package(path, packages):
            return start, end, path
    return None


def code_pointer(
    parts: list[Part], packages: tuple[str, ...], tree: RepoTree | None = None
) -> Finding | None:
    hit = first_hit(LINE_LINK_RE, parts, "text", word=False)
    if hit:
        return _finding("code_pointer", hit)
    for part in parts:
        span = repo_path(part.text, packages, tree)
        if span:
            if tree is not None:
                return Finding("code_pointer", f"{part.where}: {span[2]}")
            return Finding("code_pointer", snippet(part, span[0], span[1]))
    return None


def _identifier(text: str) -> re.Match[str] | None:
    for match in BACKTICK_IDENT_RE.finditer(text):
        name = match.group(1)
        if "_" in name or "." in name or name.endswith("()") or not name.islower():
            return match
    return None


def title_names_code(title: Part) -> Finding | None:
    text = bare_title(title.text)
    match = _identifier(text) or SNAKE_IDENT_RE.search(text) or DOTTED_CALL_RE.search(text)
    if not match:
        return None
    return Finding("title_names_code", f"title: {clip(text)}")


def code_identifier(parts: list[Part]) -> Finding | None:
    for part in parts:
        match = _identifier(part.prose)
        if match:
            return Finding("code_identifier", f"{part.where}: `{match.group(1)[:100]}`")
    return None


def screenshot_only(parts: list[Part], error_found: bool) -> Finding | None:
    """An image where the error should be, and no error text anywhere."""
    if error_found:
        return None
    hit = first_hit(IMAGE_RE, parts, word=False)
    return _finding("screenshot_only_error", hit) if hit else None


def no_description(prepared: Prepared, min_words: int) -> Finding | None:
    words = description_words([prepared.body, *prepared.reporter], min_words)
    if words >= min_words:
        return None
    return Finding(
        "no_description",
        f"body: {words} word(s) of description outside code and logs (minimum {min_words})",
    )


def vague_title(title: Part) -> Finding | None:
    words = re.findall(r"[A-Za-z0-9]{2,40}", bare_title(title.text))
    if len(words) >= 3:
        return None
    return Finding("vague_title", f"title: {clip(title.text)!r}")


def question(prepared: Prepared, question_labels: set[str]) -> Finding | None:
    for label in prepared.labels:
        if label in question_labels:
            return Finding("question", f"label: {label}")
    tag = title_tag(prepared.title.text)
    if tag in QUESTION_TAGS:
        return Finding("question", f"title: {clip(prepared.title.text)}")
    if QUESTION_TITLE_RE.search(bare_title(prepared.title.text)):
        return Finding("question", f"title: {clip(prepared.title.text)}")
    return None


def is_feature(prepared: Prepared, feature_labels: set[str]) -> bool:
    return (
        any(label in feature_labels for label in prepared.labels)
        or title_tag(prepared.title.text) in FEATURE_TAGS
        or bool(FEATURE_HEADING_RE.search(prepared.body.text))
    )


def design_ask(prepared: Prepared, feature: bool) -> Finding | None:
    """A design effort or a request for a new capability (platform, backend, method).

    An RFC / proposal title, the reporter saying a decision or design is still needed,
    or a feature whose title asks to support or integrate something new.
    """
    title = bare_title(prepared.title.text)
    if title_tag(prepared.title.text) in DECISION_TAGS or DESIGN_TITLE_WORD_RE.search(title):
        return Finding("design_ask", f"title: {clip(prepared.title.text)}")
    hit = first_hit(DESIGN_TEXT_RE, prepared.issue_text[1:], "low_prose")
    if hit:
        return _finding("design_ask", hit)
    if (feature or FEATURE_TITLE_START_RE.search(title)) and DESIGN_TITLE_RE.search(title):
        return Finding("design_ask", f"title: {clip(prepared.title.text)}")
    return None


def is_docs(prepared: Prepared, docs_labels: set[str]) -> bool:
    return (
        any(label in docs_labels for label in prepared.labels)
        or title_tag(prepared.title.text) in DOCS_TAGS
        or bool(DOCS_TITLE_RE.search(bare_title(prepared.title.text)))
    )


def content_findings(prepared: Prepared, min_words: int) -> list[Finding]:
    """Signals from what the reporter wrote (title, body, their own comments)."""
    parts = prepared.issue_text
    findings: list[Finding] = []
    traceback = has_traceback(parts)
    if traceback:
        findings.append(_finding("traceback", traceback))
    error = None if traceback else error_message(parts)
    if error:
        findings.append(_finding("error_message", error))
    wrong = first_hit(WRONG_RESULT_RE, parts, "low")
    if wrong:
        findings.append(_finding("wrong_result", wrong))
    for detector in (
        reproduction(parts),
        code_pointer(parts, prepared.package_names, prepared.tree),
        title_names_code(prepared.title),
        code_identifier(parts[1:]),
    ):
        if detector:
            findings.append(detector)
    for name, regex, field in (
        ("versions", VERSION_RE, "low"),
        ("scoped_ask", SCOPED_ASK_RE, "low_prose"),
        ("fix_proposed", FIX_PROPOSED_RE, "low_prose"),
    ):
        hit = first_hit(regex, parts, field)
        if hit:
            findings.append(_finding(name, hit))
    for negative in (
        screenshot_only(parts[1:], bool(traceback or error)),
        no_description(prepared, min_words),
        vague_title(prepared.title),
    ):
        if negative:
            findings.append(negative)
    return findings
