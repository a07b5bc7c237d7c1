"""The depth and alias limits, measured with each fragment worked out once.

strawberry's QueryDepthLimiter and MaxAliasesLimiter walk a fragment again at every spread: forty
fragments that each spread the next twice are 2^40 walks, and a 2 KB document held a worker's CPU
for good. Here a fragment's depth and alias count are known after its first use, so the walk is
linear in the document while the counts are those of the fragments expanded (each spread counts).
Depth counts nested fields that have a selection, leaving out introspection fields (`__schema`,
`__type`), as strawberry did; the messages are strawberry's.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)


@dataclass(frozen=True)
class _Shape:
    depth: int = 0
    aliases: int = 0

    def beside(self, other: _Shape) -> _Shape:
        return _Shape(max(self.depth, other.depth), self.aliases + other.aliases)


def shape_limits(*, max_depth: int, max_aliases: int) -> type[ValidationRule]:
    """A validation rule class refusing operations nested deeper than `max_depth` fields, and documents
    with more than `max_aliases` aliases. Make it once: the validation cache knows rules by class."""

    class ShapeLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            shapes = _Shapes({d.name.value: d for d in document.definitions
                              if isinstance(d, FragmentDefinitionNode)})
            aliases = 0
            for operation in document.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                shape = shapes.of(operation.selection_set)
                aliases += shape.aliases
                if shape.depth > max_depth:
                    name = operation.name.value if operation.name else "anonymous"
                    context.report_error(GraphQLError(
                        f"'{name}' exceeds maximum operation depth of {max_depth}", [operation]))
            if aliases > max_aliases:
                context.report_error(GraphQLError(f"{aliases} aliases found. Allowed: {max_aliases}"))

    return ShapeLimits


class _Shapes:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.known: dict[str, _Shape] = {}

    def of(self, selection_set: SelectionSetNode) -> _Shape:
        shape = _Shape()
        for selection in selection_set.selections:
            shape = shape.beside(self._selection(selection))
        return shape

    def _selection(self, selection: SelectionNode) -> _Shape:
        if isinstance(selection, FieldNode):
            alias = int(selection.alias is not None)
            if selection.selection_set is None:
                return _Shape(0, alias)
            inner = self.of(selection.selection_set)
            depth = 0 if selection.name.value.startswith("__") else 1 + inner.depth
            return _Shape(depth, alias + inner.aliases)
        if isinstance(selection, InlineFragmentNode):
            return self.of(selection.selection_set)
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in self.known:
                self.known[name] = _Shape()  # a cycle (refused by validation) cannot recurse for ever
                fragment = self.fragments.get(name)
                self.known[name] = self.of(fragment.selection_set) if fragment is not None else _Shape()
            return self.known[name]
        return _Shape()
