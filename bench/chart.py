"""Draws the benchmark table (bench.py's markdown rows) as an SVG bar chart: for each
pair with a time (or CPU time) on both sides, the baseline's bar at 1 and ours beside it
at the baseline's time over ours, so faster than the baseline reaches past 1; the goal,
where the row states one as a ratio, is a tick. Python's standard library only.

    python3 bench/chart.py < table.md > chart.svg   # redraw from a printed table
"""

import html
import re
import sys

UNITS = {"ms": 1e-3, "µs": 1e-6, "s": 1.0}
ROW_HEIGHT = 34
LABEL_WIDTH = 430
BAR_WIDTH = 420
SCALE_MAX = 2.0


def seconds(cell):
    """A time cell ('774.8 ms', '1.14 µs') in seconds, or None."""
    match = re.fullmatch(r"\s*([0-9.,]+)\s*(ms|µs|s)\s*", cell)
    return float(match.group(1).replace(",", "")) * UNITS[match.group(2)] if match else None


def goal_speed(cell):
    """The goal as a speed relative to the baseline: '>= 0.8x' is 0.8; '<= 1.2x' (ours
    over the baseline, lower is better) is 1/1.2; anything else None."""
    match = re.search(r"(>=|<=)\s*([0-9.]+)x", cell)
    if not match:
        return None
    value = float(match.group(2))
    return value if match.group(1) == ">=" else 1 / value


def parse(lines):
    """(pair, ours label, baseline label, relative speed, goal) for each table row with
    a time on both sides and a ratio."""
    bars = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 9 or cells[0] in ("pair", "---"):
            continue
        ours, base = seconds(cells[2]), seconds(cells[5])
        # Rows whose ratio column holds a ratio: the others compare other things (RSS,
        # percentiles, added latency).
        if ours and base and re.match(r"[0-9.]+x", cells[7]):
            bars.append((cells[0], cells[1], cells[4], base / ours, goal_speed(cells[8])))
    return bars


def svg(bars, title):
    width = LABEL_WIDTH + BAR_WIDTH + 90
    height = 70 + ROW_HEIGHT * len(bars) + 30
    scale = BAR_WIDTH / SCALE_MAX
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        '<text x="10" y="38" fill="#555">speed relative to the baseline (baseline time / our time); grey: baseline = 1, blue: ours, '
        'red tick: goal</text>',
    ]
    top = 55
    for tick in (0.5, 1.0, 1.5, 2.0):
        x = LABEL_WIDTH + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 25}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#555">{tick:.1f}x</text>')
    for i, (pair, ours_label, base_label, speed, goal) in enumerate(bars):
        y = top + i * ROW_HEIGHT
        out.append(f'<text x="10" y="{y + 13}">{html.escape(pair[:70])}</text>')
        out.append(f'<text x="10" y="{y + 26}" fill="#777" font-size="10">{html.escape(ours_label[:40])} vs {html.escape(base_label[:40])}</text>')
        out.append(f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{scale:.1f}" height="12" fill="#bbb"/>')
        shown = min(speed, SCALE_MAX)
        out.append(f'<rect x="{LABEL_WIDTH}" y="{y + 15}" width="{shown * scale:.1f}" height="12" fill="#3a78c2"/>')
        label = f"{speed:.2f}x" + ("+" if speed > SCALE_MAX else "")
        out.append(f'<text x="{LABEL_WIDTH + shown * scale + 4:.1f}" y="{y + 26}">{label}</text>')
        if goal is not None:
            x = LABEL_WIDTH + min(goal, SCALE_MAX) * scale
            out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 30}" stroke="#d33" stroke-width="2"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    lines = sys.stdin.read().splitlines()
    title = next((line for line in lines if line.startswith("Benchmarks")), "kafka_fdw benchmarks")
    sys.stdout.write(svg(parse(lines), title))


if __name__ == "__main__":
    main()
