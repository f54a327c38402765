"""Label relations of a subset manifest (`label_relations:`): which labels may never be offered together."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelRelations(Strict):
    """How a subset's labels relate, so that no question offers two options that could both be right.

    Two labels are *related* when they are synonyms, overlap, one is an ancestor of the other (`parent`), or one
    is the negation of a label that is not the other nor one of its descendants (`negations`). Related labels are
    never offered together (medmat.mat.qa; rules in docs/splits.md)."""

    synonyms: list[list[NonEmptyStr]] = Field(
        default=[], description="groups of labels with one meaning that are kept apart (e.g. by source)")
    overlaps: list[list[NonEmptyStr]] = Field(
        default=[], description="groups of labels any two of which can be true of one image")
    parent: dict[str, NonEmptyStr | list[NonEmptyStr]] = Field(
        default={}, description="child label -> its broader label(s): the child is a kind of the parent")
    negations: dict[str, NonEmptyStr] = Field(
        default={}, description="'Non-X' label -> X: true of any image that is not X, so related to every label "
                                "but X and X's children")
    distinct: list[list[NonEmptyStr]] = Field(
        default=[], description="pairs whose names suggest a relation but which exclude each other")

    def labels_named(self) -> set[str]:
        named = {x for group in self.synonyms + self.overlaps + self.distinct for x in group}
        for child, parents in self.parent.items():
            named |= {child, *([parents] if isinstance(parents, str) else parents)}
        return named | set(self.negations) | set(self.negations.values())

    def ancestors(self, label: str) -> set[str]:
        found, todo = set(), [label]
        while todo:
            parents = self.parent.get(todo.pop(), [])
            for p in [parents] if isinstance(parents, str) else parents:
                if p not in found and p != label:
                    found.add(p)
                    todo.append(p)
        return found

    def related(self, labels: list[str]) -> dict[str, frozenset[str]]:
        """label -> the labels it must never be offered with."""
        rel: dict[str, set[str]] = {label: set() for label in labels}

        def tie(a: str, b: str) -> None:
            if a != b and a in rel and b in rel:
                rel[a].add(b)
                rel[b].add(a)

        for group in self.synonyms + self.overlaps:
            for a in group:
                for b in group:
                    tie(a, b)
        for label in labels:
            for ancestor in self.ancestors(label):
                tie(label, ancestor)
        for negation, negated in self.negations.items():
            spared = {negated} | {x for x in labels if negated in self.ancestors(x)}
            for other in labels:
                if other not in spared:
                    tie(negation, other)
        return {label: frozenset(others) for label, others in rel.items()}
