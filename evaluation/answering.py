"""Asking every target every prompt, a bounded number at a time, each answer kept as it
arrives (a rerun asks only what is missing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tqdm import tqdm

from evaluation.client import ChatClient, RequestFailed
from evaluation.records import AnswerRecord, EvalPrompt
from evaluation.store import RunStore
from evaluation.targets import Target

logger = logging.getLogger("wsd.eval")


async def answer_all(
    prompts: Sequence[EvalPrompt],
    targets: Sequence[Target],
    client: ChatClient,
    store: RunStore,
    concurrency: int,
) -> int:
    """Ask what is not answered yet; returns how many answers this run added. A prompt's
    turns are asked in order, each after the target's own earlier answers."""
    slots = asyncio.Semaphore(concurrency)
    turns = sum(len(prompt.turns) for prompt in prompts)
    bars = {
        target.key: tqdm(total=turns, desc=target.name, unit="answer", position=i, leave=True)
        for i, target in enumerate(targets)
    }
    added = 0

    async def ask(target: Target, prompt: EvalPrompt) -> None:
        nonlocal added
        bar = bars[target.key]
        earlier: list[str] = []
        for turn in range(len(prompt.turns)):
            record = store.answers.get((target.key, prompt.id, turn))
            if record is None:
                async with slots:
                    record = await _answer(target, prompt, turn, earlier, client, store)
                if record is None:  # failed for good: the later turns cannot be asked
                    bar.update(len(prompt.turns) - turn)
                    return
                added += 1
            earlier.append(record.text)
            bar.update(1)

    try:
        await asyncio.gather(*(ask(target, prompt) for target in targets for prompt in prompts))
    finally:
        for bar in bars.values():
            bar.close()
    return added


async def _answer(
    target: Target,
    prompt: EvalPrompt,
    turn: int,
    earlier: list[str],
    client: ChatClient,
    store: RunStore,
) -> AnswerRecord | None:
    messages = prompt.messages(turn, earlier)
    try:
        answer = await client.stream_chat(target.base_url, target.body(messages), target.api_key)
    except RequestFailed as exc:
        logger.warning("%s, prompt %s turn %d: %s", target.name, prompt.id, turn, exc)
        failure = {"target": target.key, "prompt_id": prompt.id, "turn": turn}
        store.add_failure({**failure, "status": exc.status, "error": str(exc), "at": time.time()})
        return None
    record = AnswerRecord(
        prompt_id=prompt.id,
        turn=turn,
        target=target.key,
        model=target.model,
        settings=target.settings,
        text=answer.text,
        finish_reason=answer.finish_reason,
        usage=answer.usage,
        wsd=answer.wsd,
        ttft_s=answer.ttft_s,
        e2e_s=answer.e2e_s,
        tstamp=time.time(),
    )
    store.add_answer(record)
    return record
