"""Helpers of the case-study catalogue's tests: broken catalogues, cited rows, the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from advisor.cases import CATALOGUE_NAME, normalise_space
from tests.conftest import CORPUS

ADVISOR = str(Path(sys.executable).with_name("advisor"))
NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"
ODDS = "against-the-odds-2018-report.txt"


# ---- a broken catalogue ---------------------------------------------------------------
def mutate(corpus: Path, change) -> None:
    """Rewrite the catalogue of a corpus copy after `change(cases)` edits its entries."""
    path = corpus / CATALOGUE_NAME
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["cases"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def case_entry(cases, name):
    return next(c for c in cases if c["name"] == name)


def evidence_entry(case, field):
    return next(e for e in case["evidence"] if e["field"] == field)


# kind -> (a change to the catalogue's entries, the parts its error message must hold)
BROKEN = {
    "unknown tag": (
        lambda cs: evidence_entry(case_entry(cs, "Lantum"), "setting").update(value="hospital"),
        ["'Lantum'", "field 'setting'", "unknown tag 'hospital'"],
    ),
    "quote not in the corpus": (
        lambda cs: evidence_entry(case_entry(cs, "RAID"), "scale").update(
            quote="RAID has now been implemented in 250 organisations"
        ),
        ["'RAID'", "field 'scale'", "quote not found"],
    ),
    "quote from another case study": (
        lambda cs: evidence_entry(case_entry(cs, "Lantum"), "mechanism").update(
            quote=evidence_entry(case_entry(cs, "KardiaMobile"), "mechanism")["quote"], line=None
        ),
        ["'Lantum'", "field 'mechanism'", "quote not found", "within the case study"],
    ),
    "wrong line": (
        lambda cs: evidence_entry(case_entry(cs, "DAFNE"), "description").update(line=1),
        ["'DAFNE'", "field 'description'", "'line' is 1"],
    ),
    "unknown field": (
        lambda cs: case_entry(cs, "IAPT")["evidence"].append(
            {"field": "colour", "value": "blue", "quote": "a b c"}
        ),
        ["'IAPT'", "field 'colour'", "unknown field"],
    ),
    "missing source": (
        lambda cs: case_entry(cs, "ERAS").pop("source"),
        ["'ERAS'", "'source' is missing"],
    ),
    "case not in the manifest": (
        lambda cs: case_entry(cs, "ERAS+").update(name="ERAS++"),
        ["'ERAS++'", "field 'name'", "no case study 'ERAS++'"],
    ),
}


# ---- catalogue answers -------------------------------------------------------------------
def rows(answer):
    """(case name, sentence) for every cited row of a catalogue answer."""
    by_marker = {c.marker: c for c in answer.citations}
    found = []
    for s in answer.sentences[1:]:
        cases = {by_marker[m].passage.chunk.case_study for m in s.markers}
        assert len(cases) == 1, s
        found.append((cases.pop(), s))
    return found


def assert_cited(answer):
    """A catalogue answer whose every sentence is cited by quotes its passages hold."""
    assert answer.route in ("catalogue", "cases_like_mine") and not answer.refused
    assert answer.sentences and all(s.markers and s.verdict == "supported" for s in answer.sentences)
    for c in answer.citations:
        assert c.quote in normalise_space(c.passage.chunk.text)
    markers = {m for s in answer.sentences for m in s.markers}
    assert markers == {c.marker for c in answer.citations}
    for m in markers:
        assert f"[{m}]" in answer.text


# ---- the command line ----------------------------------------------------------------------
def run_cli(args, corpus=CORPUS, timeout=300, **env_vars):
    """`advisor ARGS` on a corpus, in a subprocess (with more environment variables if given)."""
    env = {**os.environ, "ADVISOR_CORPUS_DIR": str(corpus), **env_vars}
    return subprocess.run(
        [ADVISOR, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout
    )


# ---- what the catalogue records (expected answers) -----------------------------------------
CHAMPIONS = {
    "KardiaMobile",
    "Patients Know Best",
    "Next Generation Electronic Patient Record (Nervecentre)",
    "OBH Outcomes Platform",
    "Lantum",
    "my mhealth (myCOPD)",
    "Altogether Better",
    "DAFNE",
    "ERAS",
    "Florence (Flo)",
    "Implantable Cardioverter-Defibrillators (ICDs)",
    "RAID",
    "Schwartz Rounds (Point of Care Foundation)",
    "Macmillan Cancer Nurse Specialists",
}
NATIONAL_PROGRAMME = {
    "KardiaMobile",
    "ERAS+",
    "Next Generation Electronic Patient Record (Nervecentre)",
    "OBH Outcomes Platform",
    "my mhealth (myCOPD)",
    "DAFNE",
    "ERAS",
    "Florence (Flo)",
    "IAPT",
    "RAID",
}
TARIFF = {
    "KardiaMobile",
    "my mhealth (myCOPD)",
    "DAFNE",
    "ERAS",
    "Implantable Cardioverter-Defibrillators (ICDs)",
    "Schwartz Rounds (UK)",
}
TRIALS = {
    "KardiaMobile",
    "my mhealth (myCOPD)",
    "DAFNE",
    "ERAS",
    "Implantable Cardioverter-Defibrillators (ICDs)",
}
SPIN_OUT = {"Schwartz Rounds (Point of Care Foundation)", "Florence (Flo)", "Schwartz Rounds (UK)"}
COMPANIES = {
    "KardiaMobile",
    "Patients Know Best",
    "Next Generation Electronic Patient Record (Nervecentre)",
    "OBH Outcomes Platform",
    "Lantum",
    "my mhealth (myCOPD)",
    "High-sensitivity troponin testing",
    "Implantable Cardioverter-Defibrillators (ICDs)",
}
DIGITAL_IN_PRIMARY_CARE = {
    "KardiaMobile",
    "Lantum",
    "my mhealth (myCOPD)",
    "Florence (Flo)",
    "Ambient Voice Technology in London",
}
NICE = {
    "KardiaMobile",
    "DAFNE",
    "ERAS",
    "High-sensitivity troponin testing",
    "Implantable Cardioverter-Defibrillators (ICDs)",
    "IAPT",
}
FUNDING_ENDED = {"Altogether Better", "ERAS", "Florence (Flo)", "Macmillan Cancer Nurse Specialists"}
AHSN_SUPPORT = {
    "KardiaMobile",
    "my mhealth (myCOPD)",
    "RAID",
    "FeNO testing",
    "Ambient Voice Technology in London",
}
MENTAL_HEALTH = {
    "IAPT",
    "RAID",
    "Altogether Better",
    "Florence (Flo)",
    "Schwartz Rounds (UK)",
    "Ambient Voice Technology in London",
}
