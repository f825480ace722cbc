"""Check a rendered report's headline sentences against the table they sit above (used by
test_report_honest.py and test_readme.py): every number and every verdict a sentence states must be
the one in its table row, and a tally must count that table's rows."""
from __future__ import annotations

import re



def change_pattern(lb: str, la: str) -> re.Pattern:
    return re.compile(r"^(?P<dataset>[^,]+), (?P<task>\S+(?: \[[^\]]*\])*), (?P<metric>.+?): (?P<b>[\d.]+)% "
                      rf"\({re.escape(lb)}\) → (?P<a>[\d.]+)% \({re.escape(la)}\)(?P<rest>.*)$")
CHANCE = re.compile(r"^(?P<label>.+?) on (?P<task>\S+(?: \[[^\]]*\])*), (?P<metric>.+?): (?P<v>[\d.]+)% "
                    r"\[(?P<lo>[\d.]+), (?P<hi>[\d.]+)\], n=(?P<n>\d+)(?P<rest>.*)$")
TALLY = re.compile(r"^Of the (?P<total>\d+) rows of this table, (?P<better>\d+) improve with a paired interval above 0, "
                   r"(?P<worse>\d+) drop with one below 0,? (?:and )?(?P<noise>\d+) cannot be told from noise(?P<rest>.*)\.$")
DIFF_VERDICT = {"an improvement: its paired interval excludes 0": "yes (better)", "a drop: its paired interval excludes 0": "yes (worse)",
                "the interval includes 0, so this run cannot tell the change from noise": "no",
                "no item changed between the two models, so there is no change to measure": "no (no item changed)",
                "not a measurement": "meaningless (gallery <= k)"}
CHANCE_VERDICT = {"above chance": "above chance", "below chance": "below chance",
                  "its interval includes chance": "cannot tell from chance", "not a measurement": "meaningless (gallery <= k)"}


def section(md: str, title: str) -> str:
    body = md.split(f"\n## {title}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def tables(text: str) -> list[list[dict]]:
    """Every Markdown table of text as a list of {header: cell} rows."""
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in lines[i].strip("|").split(" | ")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("| "):
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[i].strip()[1:-1])]
                rows.append(dict(zip(header, cells)))
                i += 1
            out.append(rows)
        else:
            i += 1
    return out


def bullets(text: str) -> list[str]:
    return [ln[2:] for ln in text.splitlines() if ln.startswith("- ")]


def _pct(cell: str) -> float:
    return float(re.match(r"(-?[\d.]+)%", cell).group(1))


def check_change(s: str, rows: list[dict], lb: str, la: str) -> None:
    m = change_pattern(lb, la).match(s)
    assert m, f"unparsed sentence: {s}"
    row = next((r for r in rows if r["task"] == m["task"] and r["metric"] == m["metric"]), None)
    assert row is not None, f"no table row for: {s}"
    assert float(m["b"]) == _pct(row[lb]) and float(m["a"]) == _pct(row[la]), (s, row)
    rest = m["rest"]
    if row["n"]:
        assert f"n={row['n']}" in rest, (s, row)
    if "pp" in rest:
        pp = re.search(r"([+-][\d.]+) pp", rest).group(1)
        assert row["difference (paired 95% CI)"].startswith(f"{pp} pp"), (s, row)
        ci = re.search(r"\[([+-][\d.]+), ([+-][\d.]+)\]", rest)
        if ci:
            assert f"[{ci.group(1)}, {ci.group(2)}]" in row["difference (paired 95% CI)"], (s, row)
    said = [cell for words, cell in DIFF_VERDICT.items() if words in rest]
    assert said == ([row["beyond its CI?"]] if row["beyond its CI?"] else []), (s, row)


def check_tally(s: str, rows: list[dict]) -> None:
    m = TALLY.match(s)
    assert m, f"unparsed tally: {s}"
    cells = [r["beyond its CI?"] for r in rows]
    assert int(m["total"]) == len(rows), (s, len(rows))
    assert int(m["better"]) == cells.count("yes (better)") and int(m["worse"]) == cells.count("yes (worse)"), s
    assert int(m["noise"]) == cells.count("no"), s
    for words, cell in (("did not change on any item", "no (no item changed)"),
                        ("have no per-item data for an interval", ""),
                        ("are R@k over a gallery of at most k items", "meaningless (gallery <= k)")):
        found = re.search(rf"(\d+) {re.escape(words)}", m["rest"])
        assert (int(found.group(1)) if found else 0) == cells.count(cell), (s, words)


def check_chance(s: str, rows: list[dict]) -> None:
    m = CHANCE.match(s)
    assert m, f"unparsed sentence: {s}"
    task, *marks = m["task"].split(" [")      # the sentence's marks stand in the row's flags
    row = next((r for r in rows if r["task"] == task and r["metric"] == m["metric"] and r["model"] == m["label"]),
               None)
    assert row is not None, f"no table row for: {s}"
    assert all(mark.rstrip("]") in row["flags"] for mark in marks), (s, row)
    assert row["value [95% CI]"] == f"{m['v']}% [{m['lo']}, {m['hi']}]", (s, row)
    assert row["n"] == m["n"], (s, row)
    said = [cell for words, cell in CHANCE_VERDICT.items() if words in m["rest"]]
    assert said == [row["against chance"]], (s, row)
    if row["chance"] and row["against chance"] != "meaningless (gallery <= k)":
        c = re.search(r"chance \(([\d.]+)%\)", m["rest"])
        assert c and abs(float(c.group(1)) - _pct(row["chance"])) < 0.051, (s, row)


def check_headline(md: str, headline_title: str = "Headline") -> int:
    """Assert every sentence of the report's headline agrees with its table; returns how many were checked."""
    head = section(md, headline_title)
    found = tables(head)
    checked = 0
    if "difference (paired 95% CI)" in head:
        rows = found[0]
        lb, la = [h for h in rows[0] if h not in ("dataset", "task", "metric", "n", "difference (paired 95% CI)",
                                                   "beyond its CI?", "flags")] if rows else (None, None)
        for s in bullets(head):
            if s.startswith("Of the "):
                check_tally(s, rows)
            else:
                check_change(s, rows, lb, la)
            checked += 1
    else:
        rows = found[0] if found else []
        for s in bullets(head):
            check_chance(s, rows)
            checked += 1
    return checked
