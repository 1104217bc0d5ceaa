from wsd_engine.engines.engine import FinishReason, GenerationDelta
from wsd_engine.stop_strings import StopStringFilter, until_stop


def stream(filter_, pieces):
    return "".join(filter_.push(p) for p in pieces) + filter_.flush()


def test_no_stop_passes_everything_through():
    f = StopStringFilter(["[User]"])
    assert stream(f, ["Hello ", "world"]) == "Hello world"
    assert not f.is_stopped


def test_cut_at_first_stop_string():
    f = StopStringFilter(["\n\n[User]", "[User]"])
    assert stream(f, ["Sure.\n\n[User]\nmore"]) == "Sure."
    assert f.is_stopped and f.text == "Sure."


def test_stop_string_split_over_pieces_is_never_sent():
    f = StopStringFilter(["[User]"])
    sent = [f.push(p) for p in ["An", "swer [U", "se", "r] tail"]]
    assert sent == ["An", "swer ", "", ""]
    assert f.is_stopped and f.text == "Answer "


def test_held_back_prefix_is_released_when_it_turns_out_harmless():
    f = StopStringFilter(["[User]"])
    assert f.push("a [Us") == "a "
    assert f.push("ual]") == "[Usual]"


def test_earliest_of_several_stops_wins():
    f = StopStringFilter(["STOP", "\n"])
    assert stream(f, ["ab\ncdSTOP"]) == "ab"


def test_stop_across_the_seam_between_draft_and_continuation():
    f = StopStringFilter(["\n\n[User]"])
    draft = f.push("The draft ends here.\n\n[Us")
    continuation = f.push("er]\nnext question")
    assert draft + continuation == "The draft ends here."
    assert f.is_stopped


def test_flush_releases_partial_prefix_at_the_end():
    f = StopStringFilter(["[User]"])
    assert f.push("end [Us") == "end "
    assert f.flush() == "[Us"


def test_nothing_after_stop():
    f = StopStringFilter(["x"])
    f.push("ax")
    assert f.push("more") == "" and f.flush() == ""


def test_leaves_pending_tells_whether_text_could_start_a_stop_string():
    stops = StopStringFilter(["\n\n[User]"])
    stops.push("Paris.")
    assert stops.leaves_pending("\n\n")
    assert not stops.leaves_pending(" It is")
    assert not stops.leaves_pending("\n\n[User]")  # a whole stop string is not pending
    stops.push("\n")
    assert stops.leaves_pending("\n[")  # continues what is already held back
    assert stops.text == "Paris.\n"  # probing changes nothing


async def _deltas(pieces, finish=None):
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        yield GenerationDelta([i], piece, finish_reason=finish if last else None)


async def _texts(deltas):
    return [delta async for delta in deltas]


async def test_an_engine_stream_is_cut_at_a_stop_string_and_closed():
    closed = []

    async def engine():
        try:
            async for delta in _deltas(["Paris is", " nice.\n", "[Us", "er] more", " never"]):
                yield delta
        finally:
            closed.append(True)

    out = await _texts(until_stop(engine(), ("\n[User]", "###")))
    assert [d.text for d in out] == ["Paris is", " nice.", "", ""]
    assert out[-1].finish_reason is FinishReason.STOP and out[-2].finish_reason is None
    assert closed == [True]  # the engine's request is aborted


async def test_text_that_cannot_begin_a_stop_string_is_not_held_back():
    out = await _texts(until_stop(_deltas([" to", " start", " with", " a"]), ("zzz",)))
    assert [d.text for d in out] == [" to", " start", " with", " a"]
    last = await _texts(until_stop(_deltas(["a", " #"], FinishReason.LENGTH), ("###",)))
    assert [d.text for d in last] == ["a", " #"]  # held-back text is released at the end
    assert last[-1].finish_reason is FinishReason.LENGTH
