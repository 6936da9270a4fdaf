"""The segment layout has one source (shmrt/_core/layout.h, state.h, and
park.h's idle-word packing): the C core exports every constant and field,
shmrt/layout/ reads every exported field, and _core.pyi declares every
export.  These tests parse the headers, so a field or constant added in C
without its export (module.c) or its reader (shmrt/layout/) fails here,
naming what to add where."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from shmrt import _core
from shmrt import layout as L

CORE = Path(__file__).resolve().parent.parent / "shmrt" / "_core"
PYI = CORE.parent / "_core.pyi"

# #defines and enum members of the headers that are not segment content.
NOT_EXPORTED = {
    "SHMRT_LAYOUT_H", "SHMRT_STATE_H", "SHMRT_PARK_H",  # include guards
    "PAD",  # a padding macro
    # state.h: return codes of the transition functions, not values in memory
    "TR_OK", "TR_CANCELLED", "TR_COMPLETE", "TR_RUNNING", "TR_LAST_REF", "TR_INVALID",
    "PARK_UNPARKED", "PARK_NOTIFIED", "PARK_TIMEOUT",  # park.h: park()'s return codes
}
# struct name in layout.h -> its field table in _core
TABLES = {
    "header_t": "HEADER_FIELDS", "worker_t": "WORKER_FIELDS", "local_queue_t": "LOCAL_QUEUE_FIELDS",
    "ring_t": "RING_FIELDS", "client_t": "CLIENT_FIELDS", "func_t": "FUNC_FIELDS",
    "slot_t": "SLOT_FIELDS", "relay_t": "RELAY_FIELDS", "waiter_t": "WAITER_FIELDS",
    "send_t": "SEND_FIELDS", "block_t": "BLOCK_FIELDS", "holds_t": "HOLDS_FIELDS",
}
PRIVATE_STRUCTS = {"layout_t"}  # the process-private copy of the configuration


def _strip_comments(src: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", src, flags=re.S))


def _constants(header: str) -> set[str]:
    src = _strip_comments((CORE / header).read_text())
    names = set(re.findall(r"^\s*#define\s+([A-Z_][A-Z0-9_]*)", src, re.M))
    for body in re.findall(r"\benum\s*\{(.*?)\}", src, re.S):
        names |= set(re.findall(r"\b([A-Z_][A-Z0-9_]*)\s*(?:=|,|$)", body))
    return names


def _structs(header: str) -> dict[str, list[str]]:
    src = _strip_comments((CORE / header).read_text())
    out = {}
    for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+)\s*;", src, re.S):
        members = []
        for decl in body.split(";"):
            m = re.search(r"(\w+)\s*(?:\[[^\]]*\])?\s*$", decl.strip())
            if m and decl.strip():
                members += [n.strip().split("[")[0] for n in decl.strip().split(",")[1:]]
                members.append(m.group(1))
        out[name] = [n for n in members if n and not n.startswith("_")]
    return out


@pytest.mark.parametrize("header", ["layout.h", "state.h", "park.h"])  # park.h: the idle word
def test_every_constant_is_exported(header: str) -> None:
    names = _constants(header)
    assert names, f"no #define or enum parsed from {header}"
    missing = sorted(n for n in names - NOT_EXPORTED if not hasattr(_core, n))
    assert not missing, (f"{header} defines {missing} but shmrt._core does not export them: "
                         "add them to module.c's CONST table and to _core.pyi")


def test_every_struct_field_is_exported() -> None:
    structs = _structs("layout.h")
    assert set(structs) - PRIVATE_STRUCTS == set(TABLES), \
        f"structs of layout.h changed: {sorted(structs)}; map each to its field table here"
    for struct_name, table in TABLES.items():
        exported = getattr(_core, table)
        missing = [f for f in structs[struct_name] if f not in exported]
        assert not missing, (f"{struct_name} fields {missing} are not in _core.{table}: add "
                             "them to module.c's FIELD table")
        assert set(exported) <= set(structs[struct_name]), (struct_name, sorted(exported))


def test_every_exported_field_has_a_reader() -> None:
    read = {t for r in L.RECORDS for t in TABLES.values() if r.TABLE is getattr(_core, t)}
    assert read == set(TABLES.values()), "a field table without a record in shmrt/layout/records.py"
    for r in L.RECORDS:
        names = set(r.NAMES)
        missing = sorted(set(r.TABLE) - names - r.ARRAYS)
        assert not missing, f"shmrt/layout/records.py: add {missing} to the record {r.__name__}"
        assert r.ARRAYS <= set(r.TABLE)


def test_sizes_match_the_structs() -> None:
    for r in L.RECORDS:
        assert max(r.TABLE.values()) < r.SIZE or r.ARRAYS, r.__name__
    assert L.Header.SIZE >= _core.HEADER_STRUCT_SIZE
    assert L.Slot.SIZE == _core.SLOT_STRUCT_SIZE
    assert _core.CLIENT_FIELDS["ring"] == _core.CLIENT_SIZE  # the ring is its tail


def test_pyi_declares_every_export() -> None:
    tree = ast.parse(PYI.read_text())
    declared = set()
    for n in tree.body:
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            declared.add(n.target.id)
        elif isinstance(n, ast.ClassDef | ast.FunctionDef):
            declared.add(n.name)
    missing = sorted(k for k in dir(_core) if not k.startswith("_") and k not in declared)
    assert not missing, f"shmrt/_core.pyi lacks {missing}"


def test_state_names_come_from_the_enums() -> None:
    assert L.RUN_STATES[_core.RUN_BROKEN] == "broken"
    assert L.WORKER_STATES[_core.W_PARKED] == "parked"
    assert L.STATUS_NAMES[_core.ST_TIMEOUT] == "timeout"
    assert L.WAITER_STATES[_core.WT_WOKEN] == "woken"
    assert dict(L.SLOT_FLAG_NAMES)[_core.S_JOIN_WAKER] == "JOIN_WAKER"
    assert sum(b for b, _ in L.SLOT_FLAG_NAMES) == _core.S_FLAGS_MASK
    assert L.run_state_name(99) == "unknown(99)"


def test_packed_words() -> None:
    assert L.idle_counts(3 * _core.IDLE_UNPARK_ONE + 2) == (3, 2)
    assert L.holder_worker(_core.HOLDER_WORKER | 7) == 7
    assert L.holder_worker(3) is None and L.holder_worker(_core.HOLDER_RELAY) is None
    assert L.owner_of((42 << 32) | 3) == (42, 2, False)
    assert L.owner_of((42 << 32) | _core.OWNER_SENDER | 1) == (42, 1, True)
    st = _core.STATE_INITIAL
    assert L.slot_refs(st) == 2 and L.slot_flag_names(st) == ["NOTIFIED", "JOIN_INTEREST"]
    assert L.result_status((_core.ST_ERROR << 32) | 17) == (_core.ST_ERROR, 17)


CFG = {"n_workers": 3, "n_slots": 100, "slot_size": 512, "local_cap": 8, "n_clients": 4,
       "n_funcs": 16, "arena_size": 1 << 20}


@pytest.mark.parametrize("relay", [{}, {"n_send": 2, "send_cap": 8, "n_waiters": 5,
                                        "inflight": 10}])
def test_layout_is_the_c_core_s(relay: dict[str, int]) -> None:
    cfg = {**CFG, **relay}
    lay = L.Layout.compute(cfg)
    for k, v in _core.compute_layout(cfg).items():
        assert getattr(lay, k) == v, k
    assert lay.n_send == relay.get("n_send", 0) and lay.send_cap == relay.get("send_cap", 0)


def test_layout_refuses_bad_configs() -> None:
    with pytest.raises(L.LayoutError, match="n_workers out of range"):
        L.Layout.compute(dict(CFG, n_workers=0))
    with pytest.raises(L.LayoutError, match="lacks n_funcs"):
        L.Layout.compute({k: v for k, v in CFG.items() if k != "n_funcs"})
    lay = L.Layout.compute(CFG)
    with pytest.raises(L.LayoutError, match="worker id 3 out of range"):
        lay.worker_off(3)
    with pytest.raises(L.LayoutError, match="no relay region"):
        lay.send_off(0)


def test_config_defaults_make_a_valid_layout() -> None:
    d = L.Config(n_workers=2).as_dict()
    assert set(L.CONFIG_KEYS) <= set(d)
    assert L.Layout.compute(d).n_slots == L.CONFIG_DEFAULTS["n_slots"]


def test_bytes_loader_is_bounded() -> None:
    load = L.bytes_loader(bytes(16))
    assert load(8) == 0
    with pytest.raises(L.LayoutError, match="outside the image"):
        load(9)
    with pytest.raises(L.LayoutError):
        load(-1)
    assert L.stale_header(bytes(8)) is None


def test_statistics_fields_are_documented() -> None:
    from dataclasses import is_dataclass

    from shmrt import stats

    doc = (CORE.parent.parent / "docs" / "statistics.md").read_text()
    for name in stats.__all__:
        cls = getattr(stats, name)
        if not (isinstance(cls, type) and is_dataclass(cls)):
            continue
        assert f"## `{name}`" in doc, f"docs/statistics.md lacks a section for {name}"
        section = doc.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        for f in fields(cls):
            assert f"| `{f.name}` |" in section, f"docs/statistics.md: {name}.{f.name} undocumented"


@pytest.mark.timeout(60)
def test_statistics_are_typed_and_read_like_dicts() -> None:
    import json

    import shmrt
    from shmrt.stats import Statistics, WorkerStatistics

    with shmrt.Pool(1, slots=64, arena_size=1 << 20) as pool:
        assert pool.submit(abs, -3).result(timeout=30) == 3
        st = pool.statistics()
    assert isinstance(st, Statistics) and isinstance(st.workers[0], WorkerStatistics)
    assert st.completed == st["completed"] >= 1 and st.slots == 64
    assert st.recycled == st.get("recycled") == 0 and st.client is not None
    assert st["workers"][0]["state"] in L.WORKER_STATES.values()
    assert st["arena"]["size"] == 1 << 20
    with pytest.raises(KeyError):
        st["no_such_counter"]
    d = json.loads(json.dumps(st.as_dict()))
    assert d["client"]["id"] == st.client.id and d["workers"][0]["pid"] == st.workers[0].pid
    assert set(dict(st)) == {f.name for f in fields(Statistics)}
