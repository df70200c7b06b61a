"""Offline, deterministic: a plain-English description -> a plugin specification.

Words are matched whole (a token list, never substrings), so "todo" is not "do" and
"settings" is not "set". Each clause whose verb is a known action verb becomes an
action named verb + object ("get the current weather" -> getCurrentWeather); words
like "context" or "provides" add a provider; "API key" adds a sensitive variable.
"""

from __future__ import annotations

import re

from server.domain.spec import ActionSpec, EnvironmentVariable, PluginSpec, ProviderSpec

__all__ = ["spec_from_description"]

ACTION_VERBS = frozenset(
    """add analyze book calculate cancel check compare compute convert count create delete
    detect download estimate execute fetch find forecast format generate get list log lookup
    monitor notify parse ping post predict publish query read recommend remind remove rename
    reply run schedule search send set share sort start stop summarize sync track translate
    update upload validate verify watch write""".split()
)
STOPWORDS = frozenset(
    """a an the of for to in on at by with from and or any some all my your their its this
    that these those current currently me us it them into about via using based given
    plugin plugins eliza elizaos agent agents which who what when where how can should will
    be is are lets let allow allows users user also then manage manages managing need
    needs needed want wants help helps handle handles something things thing""".split()
)
# The object of a verb ends at a preposition: "remove a task by id" -> removeTask.
PREPOSITIONS = frozenset("by with for from in into to using via at on per every".split())
PROVIDER_WORDS = frozenset({"context", "provides", "provide", "provider", "exposes", "knowledge"})
WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
CLAUSE = re.compile(r"[.;,:!?\n]|\band\b|\bor\b|\bthen\b", re.IGNORECASE)
MAX_ACTIONS = 6


def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def _camel(words: list[str]) -> str:
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _topic(words: list[str]) -> list[str]:
    """The first one or two content words that are not verbs."""
    content = [w for w in words if w not in STOPWORDS and w not in ACTION_VERBS and len(w) > 2]
    return content[:2] or ["custom"]


def spec_from_description(description: str) -> PluginSpec:
    all_words = _words(description)
    topic = _topic(all_words)
    actions: list[ActionSpec] = []
    seen: set[str] = set()
    for clause in CLAUSE.split(description):
        words = _words(clause)
        verbs = [i for i, w in enumerate(words) if w in ACTION_VERBS]
        if not verbs:
            continue
        i = verbs[0]
        phrase: list[str] = []
        for w in words[i + 1 :]:
            if w in PREPOSITIONS:
                break
            phrase.append(w)
        objects = [w for w in phrase if w not in STOPWORDS and w not in ACTION_VERBS]
        if not objects:
            continue  # "... a todo list": a verb-like word with nothing to act on
        name = _camel([words[i], *objects[:2]])
        if name.lower() in seen or len(actions) >= MAX_ACTIONS:
            continue
        seen.add(name.lower())
        text = clause.strip()
        actions.append(
            ActionSpec(
                name=name[:64],
                description=(text[:1].upper() + text[1:])[:1000],
                parameters={"input": "string"},
            )
        )
    providers: list[ProviderSpec] = []
    if PROVIDER_WORDS & set(all_words):
        providers.append(
            ProviderSpec(
                name=_camel([*topic, "provider"]),
                description=f"Provides {' '.join(topic)} context for the conversation",
                data_structure={"summary": "string", "updatedAt": "string"},
            )
        )
    if not actions and not providers:
        actions.append(
            ActionSpec(
                name=_camel(["handle", *topic]),
                description=description.strip()[:1000],
                parameters={"input": "string"},
            )
        )
    env: list[EnvironmentVariable] = []
    lowered = " ".join(all_words)
    if re.search(r"\bapi (key|token)\b", lowered):
        env.append(
            EnvironmentVariable(
                name="_".join(topic).upper() + "_API_KEY",
                description=f"API key for the {' '.join(topic)} service",
                required=True,
                sensitive=True,
            )
        )
    slug = "-".join(topic)
    return PluginSpec(
        name=f"@auton8n/plugin-{slug}",
        description=description.strip()[:4000],
        version="1.0.0",
        actions=tuple(actions),
        providers=tuple(providers),
        environment_variables=tuple(env),
    )
