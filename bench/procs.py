"""What a process tree costs, read from /proc: CPU time and memory (RSS, PSS) of a process and
all its descendants, as a Lambda function pays for the whole tree, not for one process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Memory:
    """Resident (RSS) and proportional (PSS) set sizes of a tree, in kB, summed over its
    processes; PSS shares each page among the processes mapping it, so it does not count twice
    what a child shares with its parent."""

    rss_kb: int
    pss_kb: int
    processes: int


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by the live threads of ``root``'s tree.

    From each thread's schedstat (nanoseconds on a CPU), not from stat's utime/stime, which
    count 10 ms ticks: far too coarse for invocations of a fraction of a millisecond."""
    total = 0
    for pid in tree(root):
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(task.read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def memory(root: int) -> Memory:
    """RSS and PSS of ``root``'s tree, now (smaps_rollup, Linux 4.14+)."""
    rss = pss = count = 0
    for pid in tree(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        count += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return Memory(rss, pss, count)
