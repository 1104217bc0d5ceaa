"""Each engine's share of a WSD request's sampling settings."""

from wsd_engine.config import Role
from wsd_engine.engines.engine import SamplingSettings
from wsd_engine.request import WSDRequest
from wsd_engine.sampling import continuation_sampling, draft_sampling, engine_seed

ASKED = SamplingSettings(
    temperature=0.7, top_p=0.9, seed=42, num_logprobs=2, presence_penalty=0.5, top_k=5,
    logit_bias=((7, 2.0),), stop_token_ids=(3,), min_tokens=10,
)  # fmt: skip


def test_engine_seeds_are_distinct_and_reproducible():
    assert engine_seed(42, Role.PILOT) == engine_seed(42, Role.PILOT)
    assert engine_seed(42, Role.PILOT) != engine_seed(42, Role.BASE) != engine_seed(43, Role.BASE)
    assert engine_seed(None, Role.PILOT) is None


def test_the_draft_takes_what_shapes_the_distribution_and_not_the_base_ids():
    draft = draft_sampling(WSDRequest("r", (), sampling=ASKED))
    assert (draft.temperature, draft.top_p, draft.presence_penalty, draft.top_k) == (
        0.7, 0.9, 0.5, 5,
    )  # fmt: skip
    assert draft.num_logprobs == 2
    assert draft.logit_bias == () and draft.stop_token_ids == () and draft.min_tokens == 0
    assert draft.seed == engine_seed(42, Role.PILOT)


def test_the_continuation_takes_everything_and_the_answer_tokens_still_missing():
    request = WSDRequest("r", (), sampling=ASKED)
    continuation = continuation_sampling(request, num_answer_tokens=4)
    assert continuation.logit_bias == ((7, 2.0),) and continuation.stop_token_ids == (3,)
    assert continuation.min_tokens == 6 and continuation.seed == engine_seed(42, Role.BASE)
    assert continuation_sampling(request, num_answer_tokens=12).min_tokens == 0
