"""A vLLM general plugin (entry point group `vllm.general_plugins`): prompt log-probabilities
for the resumed chunks of a streaming-input session, so that a WSD scoring pass costs only its
new tokens (docs/method.md, "Scoring sessions").

vLLM 0.32's model runner registers prompt log-probabilities for a new request only
(`GPUModelRunner._update_states`); a session's later chunks take `_update_streaming_request`,
which does not, so they come back without them. And even registered, a chunk has no row for its
first token: that token's probability comes from the logits of the previous chunk's last
position, which the previous chunk's sampling step computed. The plugin

1. registers prompt log-probabilities for a resumed chunk that asks for them (in the worker),
   and takes them in on the output side when the session's first chunk (the prompt, read
   without them) did not ask for them;
2. keeps, for each session that asks for it (`SamplingParams.extra_args[SESSION_MARK]`), the
   raw logits the sampling step computed at a chunk's last position (the latest two chunks':
   a step samples before it writes its prompt log-probabilities);
3. writes the first new token's row of the next chunk from those logits, exactly as vLLM
   computes a prompt row (`Sampler.compute_logprobs`, `gather_logprobs`), and returns the
   chunk's rows alone (vLLM would return one for every position of the session so far, the
   earlier ones uninitialised).

It patches the runner class once (vLLM loads plugins in every process, and may load them more
than once), and only on the vLLM version it was written and tested for: on any other it does
nothing, logs that, and WSD scores with plain passes (the engine adapter checks at warm-up).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

SUPPORTED_VLLM = "0.32.0"
SESSION_MARK = "wsd_scoring_session"  # in SamplingParams.extra_args of a session's chunks
_PATCHED = "_wsd_session_scoring"


def register() -> None:
    """The plugin's entry point: patch vLLM's model runner if its version is the supported
    one."""
    try:
        import vllm
        from vllm.v1.engine.logprobs import LogprobsProcessor
        from vllm.v1.worker.gpu_model_runner import GPUModelRunner
    except ImportError:  # pragma: no cover - only loaded by vLLM itself
        return
    if getattr(GPUModelRunner, _PATCHED, False):
        return
    if vllm.__version__ != SUPPORTED_VLLM:
        logger.warning(
            "WSD scoring sessions: vLLM %s is not %s, the version the plugin was written for; "
            "it does nothing (WSD scores with plain passes)", vllm.__version__, SUPPORTED_VLLM,
        )  # fmt: skip
        setattr(GPUModelRunner, _PATCHED, True)
        return
    _patch(GPUModelRunner)
    _patch_output_side(LogprobsProcessor)
    setattr(GPUModelRunner, _PATCHED, True)
    logger.info("WSD scoring sessions: prompt logprobs for resumed session chunks (vLLM %s)",
                vllm.__version__)  # fmt: skip


def _is_session_chunk(sampling_params: Any) -> bool:
    extra = getattr(sampling_params, "extra_args", None) or {}
    return bool(extra.get(SESSION_MARK))


def _patch(runner: Any) -> None:
    update_streaming = runner._update_streaming_request
    update_states = runner._update_states
    sample = runner._sample
    prompt_logprobs = runner._get_prompt_logprobs_dict

    def _update_streaming_request(self: Any, req_id: str, new_req_data: Any) -> Any:
        state = update_streaming(self, req_id, new_req_data)
        params = new_req_data.sampling_params
        if params is not None and params.prompt_logprobs is not None:
            # what `_update_states` does for a new request
            self.num_prompt_logprobs[req_id] = (
                self.input_batch.vocab_size
                if params.prompt_logprobs == -1
                else params.prompt_logprobs
            )
        return state

    def _update_states(self: Any, scheduler_output: Any) -> Any:
        self._wsd_scheduled = dict(scheduler_output.num_scheduled_tokens)  # this step's
        result = update_states(self, scheduler_output)
        kept = _last_logits(self)
        for req_id in [req_id for req_id in kept if req_id not in self.requests]:
            del kept[req_id]  # the session ended
        return result

    def _sample(self: Any, logits: Any, spec_decode_metadata: Any) -> Any:
        if logits is not None and spec_decode_metadata is None:
            kept = _last_logits(self)
            for index, req_id in enumerate(self.input_batch.req_ids):
                state = self.requests.get(req_id)
                if state is None or not _is_session_chunk(state.sampling_params):
                    continue
                # the last position this step computes; its sample counts only when it is the
                # chunk's last token (a chunk prefilled over several steps samples in each)
                position = state.num_computed_tokens + self._wsd_scheduled.get(req_id, 0) - 1
                if position == len(state.prompt_token_ids) - 1:
                    # this step's bookkeeping still needs the previous chunk's: keep both
                    earlier = kept.get(req_id, {})
                    latest = max(earlier, default=None)
                    kept[req_id] = {position: logits[index].detach().clone()}
                    if latest is not None and latest < position:
                        kept[req_id][latest] = earlier[latest]
        return sample(self, logits, spec_decode_metadata)

    def _get_prompt_logprobs_dict(
        self: Any, hidden_states: Any, num_scheduled_tokens: dict[str, int]
    ) -> Any:
        starts = {
            req_id: self.requests[req_id].num_computed_tokens
            for req_id in self.num_prompt_logprobs
            if req_id in num_scheduled_tokens and req_id in self.requests
        }
        num_logprobs = dict(self.num_prompt_logprobs)
        result = prompt_logprobs(self, hidden_states, num_scheduled_tokens)
        kept = _last_logits(self)
        for req_id, start in starts.items():
            tensors = result.get(req_id)
            logits = kept.get(req_id, {}).get(start - 1)
            if tensors is None or logits is None or start == 0:
                continue  # not a resumed chunk's first step
            _write_first_row(self, tensors, req_id, start, logits, num_logprobs[req_id])
            # only the chunk's rows: the others are the earlier chunks' positions, which this
            # step did not compute; sending them would cost the output side O(session) a chunk
            result[req_id] = type(tensors)(
                tensors.logprob_token_ids[start - 1 :],
                tensors.logprobs[start - 1 :],
                tensors.selected_token_ranks[start - 1 :],
            )
        return result

    runner._update_streaming_request = _update_streaming_request
    runner._update_states = _update_states
    runner._sample = _sample
    runner._get_prompt_logprobs_dict = _get_prompt_logprobs_dict
    runner._wsd_scheduled = {}


def _patch_output_side(processor: Any) -> None:
    """A session whose first chunk read the prompt without prompt log-probabilities takes in
    its later chunks' (they would otherwise fail vLLM's assertion that it asked for them)."""
    update = processor._update_prompt_logprobs

    def _update_prompt_logprobs(self: Any, prompt_logprobs_tensors: Any) -> None:
        if self.num_prompt_logprobs is None:
            from vllm.logprobs import create_prompt_logprobs

            self.num_prompt_logprobs = int(prompt_logprobs_tensors.logprobs.shape[1]) - 1
            self.prompt_logprobs = create_prompt_logprobs(False)
        update(self, prompt_logprobs_tensors)

    processor._update_prompt_logprobs = _update_prompt_logprobs


def _last_logits(runner: Any) -> dict[str, Any]:
    kept = getattr(runner, "_wsd_last_logits", None)
    if kept is None:
        kept = runner._wsd_last_logits = {}
    return kept  # type: ignore[no-any-return]


def _write_first_row(
    runner: Any, tensors: Any, req_id: str, start: int, logits: Any, num_logprobs: int
) -> None:
    """Row `start - 1` (token `start`'s log-probability and the top ones at its position),
    from the logits the previous chunk's sampling step computed there."""
    import torch

    token = runner.requests[req_id].prompt_token_ids[start]
    scores = runner.sampler.compute_logprobs(logits.unsqueeze(0).float())
    target = torch.tensor([token], device=scores.device, dtype=torch.long)
    token_ids, logprobs, ranks, *_ = runner.sampler.gather_logprobs(scores, num_logprobs, target)
    row = slice(start - 1, start)
    tensors.logprob_token_ids[row].copy_(token_ids)
    tensors.logprobs[row].copy_(logprobs)
    tensors.selected_token_ranks[row].copy_(ranks)
