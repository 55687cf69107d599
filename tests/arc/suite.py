"""Reading the ValiMail ARC test suite (../shared/testdata/arc-test-suite) as it is.

The YAML files are loaded directly. The validation file has four test ids written twice in
one mapping (as_fields_b_head_case, _head_unfold, _eol_wsp, _inl_wsp under "Arc Seal
Fields"); `yaml.safe_load_all`, as the reference harness used, keeps only the last of each,
which gives the 171 tests SOURCE.md counts. This loader keeps the shadowed ones too (as
"<id>#2"), so every case written in the file runs: 175.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.testdata import testdata_dir

from mailwarden.dns import StaticResolver
from mailwarden.message import Message

SUITE = "arc-test-suite"
VALIDATION_FILE = "arc-draft-validation-tests.yml"
SIGNING_FILE = "arc-draft-sign-tests.yml"

# SOURCE.md "Known problems": these three expect "" (the reference runner printed dkimpy's
# None); RFC 8617 §5.2 steps 2 and 3 make them fail, as SOURCE.md recommends.
EMPTY_CV_READ_AS_FAIL = frozenset(
    {"cv_fail_i1_as_cv_fail", "cv_fail_i2_as2_fail", "cv_fail_i2_as1_fail"}
)


class _KeepDuplicates(yaml.SafeLoader):
    """A SafeLoader that renames a repeated mapping key to "<key>#2" instead of dropping it."""


def _mapping(loader: _KeepDuplicates, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        if key in out:
            n = 2
            while f"{key}#{n}" in out:
                n += 1
            key = f"{key}#{n}"
        out[key] = value
    return out


_KeepDuplicates.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def suite_dir() -> Path:
    return testdata_dir() / SUITE


def suite_file(name: str) -> Path:
    return suite_dir() / name


def load_documents(name: str, *, keep_duplicates: bool = True) -> list[dict[str, Any]]:
    path = suite_file(name)
    if not path.exists():
        return []
    loader = _KeepDuplicates if keep_duplicates else yaml.SafeLoader
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.load_all(stream, Loader=loader) if doc]


def to_message(text: str) -> Message:
    """SOURCE.md step 2: the YAML text (LF endings) with every LF turned into CRLF."""
    return Message.from_bytes(text.replace("\n", "\r\n").encode("utf-8"))


def resolver_for(txt_records: dict[str, str]) -> StaticResolver:
    """SOURCE.md: the scenario's txt-records are the only DNS; newlines inside a value (the
    signing file's `|` blocks) are dropped, long values split into 255-byte strings."""
    return StaticResolver(
        {name: {"TXT": value.replace("\n", "")} for name, value in txt_records.items()}
    )


@dataclass(frozen=True)
class ValidationCase:
    id: str
    scenario: str
    message: str
    cv: str  # as written in the file ("Pass", "Fail", "None" or "")
    txt_records: dict[str, str]

    @property
    def expected(self) -> str:
        if self.cv == "" and self.id in EMPTY_CV_READ_AS_FAIL:
            return "fail"
        return self.cv.lower()


@dataclass(frozen=True)
class SigningCase:
    id: str
    scenario: str
    test: dict[str, Any]
    domain: str
    selector: str
    private_key: str
    txt_records: dict[str, str]


def validation_cases() -> list[ValidationCase]:
    cases: list[ValidationCase] = []
    for doc in load_documents(VALIDATION_FILE):
        for test_id, test in doc["tests"].items():
            cases.append(
                ValidationCase(
                    test_id,
                    doc["description"],
                    test["message"],
                    test["cv"],
                    doc["txt-records"],
                )
            )
    return cases


def signing_cases() -> list[SigningCase]:
    cases: list[SigningCase] = []
    for doc in load_documents(SIGNING_FILE):
        for test_id, test in doc["tests"].items():
            cases.append(
                SigningCase(
                    test_id,
                    doc["description"],
                    test,
                    doc["domain"],
                    doc["sel"],
                    doc["privatekey"],
                    doc["txt-records"],
                )
            )
    return cases


def source_counts() -> dict[str, int]:
    """The test counts SOURCE.md's Content table gives per file."""
    text = (suite_dir() / "SOURCE.md").read_text(encoding="utf-8")
    counts = {}
    for file_name, count in re.findall(r"\| `([\w.-]+\.yml)` \| \d+ \| \*\*(\d+)\*\* \|", text):
        counts[file_name] = int(count)
    return counts


def tag_set(value: str) -> set[str]:
    """The reference harness's comparison: all whitespace removed, split on ";", as a set."""
    return {part for part in "".join(value.split()).split(";") if part}
