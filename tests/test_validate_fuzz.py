"""Garbled and random YAML never crashes `validate`: it always ends in problems, never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medmat.cli import app
from medmat.validation import validate
from tests.conftest import MANIFESTS, TEMPLATE_SOURCE

VALID_TEXT = (MANIFESTS / "sources" / f"{TEMPLATE_SOURCE}.yaml").read_text()

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=20,
)


@st.composite
def garbled_manifest(draw) -> str:
    """A valid manifest with random slices cut out, characters inserted, or lines shuffled."""
    text = VALID_TEXT
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "insert", "swap-lines"]))
        if kind == "cut" and text:
            i = draw(st.integers(0, len(text) - 1))
            j = draw(st.integers(i, min(len(text), i + 80)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(st.text(alphabet=":-[]{}\"'&*!|>%@`#\n\t ab1", max_size=8)) + text[i:]
        else:
            lines = text.splitlines()
            if len(lines) > 1:
                a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                lines[a], lines[b] = lines[b], lines[a]
                text = "\n".join(lines)
    return text


def _assert_clean_failure_or_success(root, text):
    (root / "sources" / f"{TEMPLATE_SOURCE}.yaml").write_text(text, encoding="utf-8")
    _, problems = validate(root)  # must not raise
    for p in problems:
        assert p.file and p.message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=garbled_manifest())
def test_garbled_manifest_never_crashes(mini_copy, text):
    _assert_clean_failure_or_success(mini_copy.root, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=yaml_values)
def test_random_yaml_document_never_crashes(mini_copy, data):
    _assert_clean_failure_or_success(mini_copy.root, yaml.safe_dump(data))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_random_text_never_crashes(mini_copy, text):
    _assert_clean_failure_or_success(mini_copy.root, text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=garbled_manifest())
def test_cli_reports_without_traceback(mini_copy, text):
    (mini_copy.root / "sources" / f"{TEMPLATE_SOURCE}.yaml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(mini_copy.root)])
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
