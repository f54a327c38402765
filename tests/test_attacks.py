"""The attack suite as tests: every attack of tests/attack_cases.py, through the real CLI, must be met exactly
(reason in the report, exit code, files on disk) with no crash, hang, escape, silent loss or bad data accepted.
`bench/attack_suite.py` runs the same attacks and prints the table."""

from __future__ import annotations

import pytest

from .attack_cases import ATTACKS
from .attack_kit import Env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack(attack, tmp_path):
    findings = attack.run(Env(tmp_path))
    assert findings == [], "\n".join(f"{column}: {message}" for column, message in findings)


def test_attack_names_are_unique_and_every_class_is_attacked():
    names = [a.name for a in ATTACKS]
    assert len(names) == len(set(names))
    assert {a.kind for a in ATTACKS} == {"accounting", "atomic", "bounds", "confinement", "determinism", "downloads",
                                         "isolation", "values"}
