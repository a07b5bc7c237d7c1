"""Error messages that never repeat a value the client sent (rule 4).

graphql-core and strawberry quote the offending value back ("found: {legalName: "…", phone: "+2547…"}",
"cannot represent …: '+2547…'", "Value 'X' does not exist in 'Sex' enum"): a name or phone number
typed into the wrong place would reach the client, its logs and any proxy in between. Two layers:

1. `without_echoed_values` rewrites every message form graphql-core 3.3 and strawberry produce for
   a refused value, keeping where (variable, argument, path, type, field name) and dropping what.
2. `SentValues` is the backstop for any form the first layer does not know (a library upgrade, a
   parser's detail): it holds every value the request carried (literals in the document, leaves and
   non-name keys of the variables) and a message that still contains one, even truncated or
   escaped, is replaced by a generic one that keeps only the where.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    EnumValueNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLSchema,
    Node,
    ObjectFieldNode,
    ValueNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)
from graphql.language import Lexer, Source, TokenKind

_WHERE = re.compile(
    r"^(?P<who>Variable '\$\w+'(?: defined by fragment '\w+')?|Argument '\w+') has invalid (?P<default>default )?"
    r"value(?: at (?P<path>(?:\.\w+|\[\d+\])+))?(?::\s*(?P<reason>.*))?$", re.S)
_FOUND = re.compile(r"(?:[,;] but encountered error |[,;.?] [Ff]ound\b)")
_NOT_IN_ENUM = re.compile(r"^Value .* does not exist in '(?P<enum>\w+)' enum\.(?P<rest>.*)$", re.S)
_ENUM_REFUSED = re.compile(r"(?:does not exist in '|^Enum ')(?P<enum>\w+)'(?: enum\.| cannot represent)")
_CANNOT_REPRESENT = re.compile(r"^(?P<what>.*?cannot represent[^:]*):.*$", re.S)
_SYNTAX_TOKEN = re.compile(r"^(?P<what>Syntax Error: .*?\b(?:Name|String|BlockString|Int|Float)) '.*'\.$", re.S)
_SYNTAX_DETAIL = re.compile(r"^(?P<what>Syntax Error: [^:']*):\s.*$", re.S)
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_SUGGESTION = re.compile(r"\s*Did you mean\b[^?]*\?", re.S)
SYNTAX_ERROR = "Syntax Error:"
GENERIC = "A value in this request is not valid where it is used (see locations); it is not repeated here."
GENERIC_SYNTAX = f"{SYNTAX_ERROR} the document does not parse at the location given."
SHORTEST_VALUE = 3  # shorter values ("1", "sw") cannot identify anyone, and would match everywhere
PROBE_LENGTH = 24  # libraries truncate long values but keep their beginning


def _reason(message: str) -> str:
    """A library's reason for refusing a value, without the value."""
    found = _FOUND.search(message)
    if found is not None:
        head = message[: found.start()]
        if message[found.start()] == "?":  # "Did you mean 'status'? Found: …" keeps its question mark
            head += "?"
        return head if head.endswith(("?", ".")) else f"{head}."
    if (match := _NOT_IN_ENUM.match(message)) is not None:
        return f"Not a value of the enum '{match['enum']}'.{match['rest']}"
    if (match := _CANNOT_REPRESENT.match(message)) is not None:
        return f"{match['what']}."
    return message


def _where(match: re.Match[str]) -> str:
    """'Variable '$input' has an invalid value at 'input.birthYear'' from graphql-core's prefix."""
    who = match["who"]
    name = who.split("'")[1].lstrip("$")
    at = f" at '{name}{match['path']}'" if match["path"] else ""
    return f"{who} has an invalid {match['default'] or ''}value{at}"


def without_echoed_values(message: str) -> str:
    """The message with any value it quotes removed; where the value was and why it was refused stay."""
    if message.startswith(SYNTAX_ERROR):
        for pattern in (_SYNTAX_TOKEN, _SYNTAX_DETAIL):
            if (match := pattern.match(message)) is not None:
                return f"{match['what']}."
        return message
    if (match := _WHERE.match(message)) is not None:
        reason = match["reason"]
        return f"{_where(match)}: {_reason(reason)}" if reason else f"{_where(match)}."
    return _reason(message)


def without_suggestions(message: str) -> str:
    """The message without graphql-core's "Did you mean …?" hints, which name arguments, types, enum
    values and input fields: in production they would rebuild the schema introspection hides."""
    return _SUGGESTION.sub("", message).strip()


class _EnumLiterals(Visitor):
    """Bare names in value positions: `legalName: Amina` is a value, though it looks like a name."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def enter_enum_value(self, node: EnumValueNode, *_: Any) -> None:
        self.found.append(node.value)


_NAMED = (ArgumentNode, ObjectFieldNode, VariableDefinitionNode)


class _LiteralPaths(Visitor):
    """Where each literal of a document sits, by argument (or variable, for a default) and input field
    names: 'input.sex'."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[int, str] = {}

    def enter(self, node: Node, _key: Any, parent: Any, _path: Any, ancestors: Any) -> None:
        if not isinstance(node, ValueNode):
            return
        names = [a.variable.name.value if isinstance(a, VariableDefinitionNode) else a.name.value
                 for a in (*ancestors, parent) if isinstance(a, _NAMED)]
        if names and node.loc is not None:
            self.paths[node.loc.start] = ".".join(names)


def allowed_values(error: GraphQLError, message: str, schema: GraphQLSchema,
                   document: DocumentNode | None) -> str:
    """For a value an enum refused, the (already scrubbed) message saying which values it allows:
    'Variable '$input' has an invalid value: input.priority must be one of ROUTINE, URGENT, ASAP.'.
    The list comes from the schema, never from the request; any other message is returned as is."""
    refused = _ENUM_REFUSED.search(error.message)
    enum = schema.get_type(refused["enum"]) if refused is not None else None
    if not isinstance(enum, GraphQLEnumType):
        return message
    must = f"must be one of {', '.join(enum.values)}."
    if (where := _WHERE.match(error.message)) is not None:
        name = where["who"].split("'")[1].lstrip("$")
        return f"{where['who']} has an invalid {where['default'] or ''}value: {name}{where['path'] or ''} {must}"
    nodes = error.nodes or []
    if document is None or len(nodes) != 1 or nodes[0].loc is None:
        return message
    literals = _LiteralPaths()
    visit(document, literals)
    path = literals.paths.get(nodes[0].loc.start)
    return f"{path} {must}" if path is not None else message


class SentValues:
    """Every value one request carried, to recognise them in an error message however quoted."""

    def __init__(self, values: set[str]) -> None:
        probes: dict[int, set[str]] = defaultdict(set)
        for value in values:
            for spelling in (value, json.dumps(value)[1:-1], repr(value)[1:-1]):
                probe = spelling[:PROBE_LENGTH]
                if len(probe) >= SHORTEST_VALUE:
                    probes[len(probe)].add(probe)
        self._probes = dict(probes)

    @classmethod
    def of(cls, query: str | None, document: DocumentNode | None, variables: Any) -> SentValues:
        values: set[str] = set()
        _collect(variables, values)
        if document is not None:
            literals = _EnumLiterals()
            visit(document, literals)
            values.update(literals.found)
        if query:
            values.update(_literal_tokens(query))
        return cls(values)

    def found_in(self, text: str) -> bool:
        return any(text[i:i + length] in probes for length, probes in self._probes.items()
                   for i in range(len(text) - length + 1))

    def scrubbed(self, error: GraphQLError) -> tuple[str, dict[str, Any] | None]:
        """The error's message and extensions with nothing the client sent left in them."""
        message = without_echoed_values(error.message)
        if self.found_in(message):
            match = _WHERE.match(error.message)
            message = GENERIC_SYNTAX if message.startswith(SYNTAX_ERROR) else \
                f"{_where(match)}." if match is not None else GENERIC
        extensions = error.extensions
        if extensions and self.found_in(json.dumps(extensions, default=str, ensure_ascii=False)):
            extensions = None
        return message, extensions


def _collect(value: Any, into: set[str]) -> None:
    """Leaves of JSON variables, and keys that are not GraphQL names (a name may be named back)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _GRAPHQL_NAME.fullmatch(str(key)):
                into.add(str(key))
            _collect(item, into)
    elif isinstance(value, list):
        for item in value:
            _collect(item, into)
    elif value is not None and not isinstance(value, bool):
        into.add(str(value))


def _literal_tokens(query: str) -> list[str]:
    """String and number literals of the document, up to where it stops lexing."""
    found: list[str] = []
    lexer = Lexer(Source(query))
    try:
        token = lexer.advance()
        while token.kind is not TokenKind.EOF:
            if token.kind in (TokenKind.STRING, TokenKind.BLOCK_STRING, TokenKind.INT, TokenKind.FLOAT) and \
                    token.value is not None:
                found.append(token.value)
            token = lexer.advance()
    except GraphQLError:
        pass
    return found
