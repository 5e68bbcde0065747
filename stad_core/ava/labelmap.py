"""AVA label maps (action id -> name) in every layout found in the wild.

Accepted layouts (detected from the text, not the file name):

* protobuf text, ``item { name: "..." id: N }`` -- the official AVA / ActivityNet lists;
* protobuf text, ``label { name: "..." label_id: N label_type: T }`` -- the full AVA v2.x list;
* either of those with each block on one line (``item { name: "x" id: 1 }``);
* ``N: name`` lines -- MMAction2's ``tools/data/ava/label_map.txt``;
* a JSON object ``{"name": id, ...}`` -- PySlowFast's class-name files.

Names may repeat (MMAction2's test list has two ``action3``); ids may not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stad_core.ava.keys import AvaFormatError, check_readable

# Tokens of the protobuf text layout: block open/close and ``field: value`` pairs.
_TOKEN = re.compile(
    r"""(?P<open>[A-Za-z_]\w*)\s*\{
      | (?P<close>\})
      | (?P<key>[A-Za-z_]\w*)\s*:\s*(?P<value>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s{}"']+)
      | (?P<space>\s+)
      | (?P<comment>\#[^\n]*)
    """,
    re.VERBOSE,
)
_ID_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$")
_ID_FIELDS = ("id", "label_id")
_KNOWN_FIELDS = {"name", "id", "label_id", "label_type", "display_name"}


@dataclass
class LabelMap:
    """Action ids (1-based) with their names, and label types when the layout has them.

    Attributes:
        names: id -> name, ordered by id.
        label_types: id -> type (``PERSON_MOVEMENT``, ``OBJECT_MANIPULATION``,
            ``PERSON_INTERACTION``) for the ids that have one; empty for layouts without types.
        source: the file it was read from (``"<memory>"`` otherwise).
    """

    names: dict[int, str]
    label_types: dict[int, str] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.names = {i: self.names[i] for i in sorted(self.names)}
        unknown = set(self.label_types) - set(self.names)
        if unknown:
            raise ValueError(f"label types given for ids without a name: {sorted(unknown)}")
        self.label_types = {i: self.label_types[i] for i in sorted(self.label_types)}

    @property
    def ids(self) -> list[int]:
        """Sorted action ids."""
        return list(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self.names

    def name(self, action_id: int) -> str:
        """The name of ``action_id``; KeyError naming the label map if it has no such id."""
        try:
            return self.names[action_id]
        except KeyError:
            raise KeyError(f"action id {action_id} is not in label map {self.source} ({len(self)} ids)") from None

    def index_of(self) -> dict[int, int]:
        """id -> contiguous 0-based class index (the column of a model's score vector)."""
        return {action_id: i for i, action_id in enumerate(self.names)}

    def subset(self, ids: Iterable[int]) -> LabelMap:
        """The label map restricted to ``ids`` (e.g. the 60 evaluated classes of the 80)."""
        ids = list(ids)
        missing = [i for i in ids if i not in self.names]
        if missing:
            raise KeyError(f"ids {missing} are not in label map {self.source}")
        return LabelMap(
            {i: self.names[i] for i in ids},
            {i: self.label_types[i] for i in ids if i in self.label_types},
            self.source,
        )


def read_labelmap(path: str | Path) -> LabelMap:
    """Read a label map in any of the layouts in the module docstring.

    Raises:
        InputFileError: the file is missing.
        AvaFormatError: the layout is not recognised, an id is missing/not a positive integer/
            repeated, or a block is unbalanced -- naming the line.
    """
    path = check_readable(path, "label map")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise AvaFormatError(path, "not UTF-8 text") from None
    stripped = text.strip()
    if not stripped:
        raise AvaFormatError(path, "label map is empty")
    if stripped.startswith("{"):
        return _read_json(path, stripped)
    first = next(line for line in stripped.splitlines() if line.strip())
    if _ID_LINE.match(first) and "{" not in first:
        return _read_id_lines(path, text)
    return _read_pbtxt(path, text)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _positive_id(path: Path, raw: str, line: int) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise AvaFormatError(path, f"id {raw!r} is not a positive integer", line=line, hint="AVA action ids are 1-based")
    return int(raw)


def _add(path: Path, names: dict[int, str], first_line: dict[int, int], action_id: int, name: str, line: int) -> None:
    where = line or None  # JSON entries have no line number
    if action_id in names:
        first = f" (first on line {first_line[action_id]})" if first_line[action_id] else ""
        raise AvaFormatError(path, f"id {action_id} appears twice{first}", line=where)
    if not name:
        raise AvaFormatError(path, f"id {action_id} has an empty name", line=where)
    names[action_id] = name
    first_line[action_id] = line


def _read_pbtxt(path: Path, text: str) -> LabelMap:
    names: dict[int, str] = {}
    types: dict[int, str] = {}
    first_line: dict[int, int] = {}
    block: dict[str, tuple[str, int]] | None = None
    block_line = 0
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            line = _line_of(text, pos)
            snippet = text[pos : pos + 20].split("\n")[0]
            raise AvaFormatError(path, f"unexpected text {snippet!r}", line=line, hint="expected item { name: \"...\" id: N } blocks")
        pos = m.end()
        line = _line_of(text, m.start())
        if m.group("open"):
            if block is not None:
                raise AvaFormatError(path, f"block opened on line {block_line} is not closed before a new one", line=line)
            block, block_line = {}, line
        elif m.group("close"):
            if block is None:
                raise AvaFormatError(path, "'}' without a matching block", line=line)
            id_field = next((f for f in _ID_FIELDS if f in block), None)
            if id_field is None or "name" not in block:
                missing = "id (id: N or label_id: N)" if id_field is None else "name"
                raise AvaFormatError(path, f"block has no {missing}", line=block_line)
            raw_id, id_line = block[id_field]
            action_id = _positive_id(path, raw_id, id_line)
            _add(path, names, first_line, action_id, block["name"][0], block_line)
            if "label_type" in block:
                types[action_id] = block["label_type"][0]
            block = None
        elif m.group("key"):
            key = m.group("key")
            if block is None:
                raise AvaFormatError(path, f"field {key!r} outside a block", line=line)
            if key not in _KNOWN_FIELDS:
                raise AvaFormatError(path, f"unknown field {key!r}", line=line, hint=f"known fields: {', '.join(sorted(_KNOWN_FIELDS))}")
            if key in block:
                raise AvaFormatError(path, f"field {key!r} given twice in one block", line=line)
            block[key] = (_unquote(m.group("value")), line)
    if block is not None:
        raise AvaFormatError(path, "block is not closed (missing '}')", line=block_line, hint="was the file truncated?")
    if not names:
        raise AvaFormatError(path, "no labels found", hint="expected item { name: \"...\" id: N } blocks")
    return LabelMap(names, types, str(path))


def _read_id_lines(path: Path, text: str) -> LabelMap:
    names: dict[int, str] = {}
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        m = _ID_LINE.match(line.rstrip("\r"))
        if m is None:
            raise AvaFormatError(path, f"line {line.strip()!r} is not 'id: name'", line=lineno)
        _add(path, names, first_line, _positive_id(path, m.group(1), lineno), m.group(2), lineno)
    return LabelMap(names, {}, str(path))


def _read_json(path: Path, text: str) -> LabelMap:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AvaFormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, dict):
        raise AvaFormatError(path, "expected a JSON object {name: id}")
    names: dict[int, str] = {}
    first_line: dict[int, int] = {}
    for name, raw_id in data.items():
        if isinstance(raw_id, bool) or not isinstance(raw_id, int) or raw_id < 1:
            raise AvaFormatError(path, f"id of {name!r} is {raw_id!r}, not a positive integer")
        _add(path, names, first_line, raw_id, str(name), 0)
    return LabelMap(names, {}, str(path))


def write_labelmap(path: str | Path, labelmap: LabelMap) -> None:
    """Write the ``label { name: ".." label_id: N label_type: T }`` layout (type line only when known)."""
    chunks = []
    for action_id, name in labelmap.names.items():
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        lines = [f'  name: "{escaped}"', f"  label_id: {action_id}"]
        if action_id in labelmap.label_types:
            lines.append(f"  label_type: {labelmap.label_types[action_id]}")
        chunks.append("label {\n" + "\n".join(lines) + "\n}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(chunks))
