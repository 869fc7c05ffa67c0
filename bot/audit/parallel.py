"""A long trail verified in parts, one process each, with the verdict one walk would give.

Each event's hash covers the previous event's hash as stored with it, so an event can be
checked knowing only the event before it. The trail is cut by id into consecutive parts;
each part's walk starts from what a walk from the first event would hold there (the
event just before the part, and the first keyed event before it: ``Start``), which it
does whenever everything before the part fits. The parts' verdicts are then read in
order: the first part with a bad event names it, its counts added to those of the parts
before it; when every part fits, the end of the last decides as a single walk's end.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import replace
from multiprocessing.context import BaseContext
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.audit.verification import Progress, Start, Verdict, Walk, walk_part
from bot.audit_key import AuditKey
from bot.storage.models import AuditEvent

#: How far the parts have got, summed over the worker processes (events checked).
_checked: Any = None


def verify_in_parts(
    sessions: sessionmaker[Session],
    keys: Sequence[AuditKey],
    total: int,
    parts: int,
    progress: Progress | None,
) -> Verdict:
    bounds = [1 + total * i // parts for i in range(parts)] + [total + 1]
    ranges = list(itertools.pairwise(bounds))
    with sessions() as session:
        starts = [_start(session, first) for first, _ in ranges]
    bind = sessions.kw["bind"]
    url = bind.url.render_as_string(hide_password=False)
    bind.dispose()  # no connection of ours is carried into the workers
    context = _context()
    checked = context.Value("q", 0)
    with ProcessPoolExecutor(
        parts, mp_context=context, initializer=_share, initargs=(checked,)
    ) as pool:
        futures = [
            pool.submit(_walk, url, list(keys), ids, start)
            for ids, start in zip(ranges, starts, strict=True)
        ]
        while True:
            done, waiting = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
            if progress is not None:
                progress(min(checked.value, total), total)
            if not waiting or any(f.exception() is not None for f in done):
                break
        results = [future.result() for future in futures]
    return _verdict(keys, results)


def _context() -> BaseContext:
    """How the workers start. Not by forking this process: a copy made while another
    thread holds a lock (a logging handler's, an import's, a connection pool's) would wait
    for it forever. A fork server is a fresh process with this module imported and no
    other thread, started once: each worker is a copy of it, ready at once, and opens its
    own connection. Where there is none, each worker starts afresh (about a second)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # read when the server starts
    return context


def _start(session: Session, first: int) -> Start | None:
    """What a walk from the first event holds once it has checked every event before
    ``first`` (None for the first part)."""
    before = session.execute(
        select(col(AuditEvent.id), col(AuditEvent.hash), col(AuditEvent.key_id))
        .where(col(AuditEvent.id) < first)
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    if before is None:
        return None
    keyed = session.execute(
        select(col(AuditEvent.id), col(AuditEvent.at))
        .where(col(AuditEvent.id) < first, col(AuditEvent.key_id).is_not(None))
        .order_by(col(AuditEvent.id))
        .limit(1)
    ).first()
    return Start(
        previous=before[1],
        previous_key=before[2],
        last_id=before[0] or 0,
        keyed_from=keyed[0] if keyed else None,
        keyed_at=keyed[1] if keyed else None,
    )


def _share(checked: Any) -> None:
    global _checked
    _checked = checked


def _walk(
    url: str, keys: list[AuditKey], ids: tuple[int, int], start: Start | None
) -> tuple[Verdict | None, Walk]:
    """In a worker: walk one part; its verdict if an event in it does not fit."""
    from bot.storage.db import make_reader

    engine = make_reader(url)
    walk = Walk(keys, start)
    reached = ids[0] - 1

    def told(at: int) -> None:
        nonlocal reached
        with _checked.get_lock():
            _checked.value += at - reached
        reached = at

    try:
        return walk_part(sessionmaker(engine), walk, ids, told), walk
    finally:
        engine.dispose()


def _verdict(keys: Sequence[AuditKey], results: list[tuple[Verdict | None, Walk]]) -> Verdict:
    """The parts' verdicts, in order, as one walk's."""
    whole = Walk(keys)
    for verdict, walk in results:
        signed_by = whole.signed_by + [k for k in walk.signed_by if k not in whole.signed_by]
        if verdict is not None:
            return replace(
                verdict,
                checked=whole.checked + verdict.checked,
                unkeyed=whole.unkeyed + verdict.unkeyed,
                key_ids=tuple(signed_by),
            )
        if walk.last_id > whole.last_id:
            whole.previous, whole.previous_key, whole.last_id = (
                walk.previous,
                walk.previous_key,
                walk.last_id,
            )
        whole.checked += walk.checked
        whole.unkeyed += walk.unkeyed
        whole.signed_by = signed_by
        if whole.keyed_from is None:
            whole.keyed_from, whole.keyed_at = walk.keyed_from, walk.keyed_at
    return whole.end()
