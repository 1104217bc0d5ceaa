"""POST /tokenize and POST /detokenize, with vLLM's request and response shapes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from server.deps import RegistryDep
from server.protocol import DetokenizeRequest, TokenizeRequest
from server.responses import DetokenizeResponse, TokenizeResponse
from server.routes.documented import responses
from wsd_engine.request import RequestError, check_vocabulary
from wsd_engine.templates import render_prompt

router = APIRouter()
_ERRORS = responses(400, 401, 404, 413, 500)


@router.post("/tokenize", response_model=TokenizeResponse, responses=_ERRORS)
async def tokenize(body: TokenizeRequest, registry: RegistryDep) -> TokenizeResponse:
    """Token ids of a prompt, or of chat messages rendered as the model's requests are (the
    WSD model id, the default, as the base model)."""
    refused = body.refused_chat_option()
    if refused is not None:
        raise RequestError(f"{refused}: not supported with messages on this server", refused)
    model = registry.tokenizing_model(body.model)
    tokenizer = model.engine.tokenizer

    def encode() -> TokenizeResponse:
        if body.messages is not None:
            messages = tuple(m.to_message() for m in body.messages)
            ids = render_prompt(tokenizer, messages, model.template).token_ids
        else:
            special = True if body.add_special_tokens is None else body.add_special_tokens
            ids = list(tokenizer.encode(body.prompt, add_special_tokens=special))
        strs = tokenizer.convert_ids_to_tokens(ids) if body.return_token_strs else None
        return TokenizeResponse(
            count=len(ids), max_model_len=model.max_model_len, tokens=ids, token_strs=strs
        )

    return await asyncio.to_thread(encode)


@router.post("/detokenize", response_model=DetokenizeResponse, responses=_ERRORS)
async def detokenize(body: DetokenizeRequest, registry: RegistryDep) -> DetokenizeResponse:
    """The text of token ids (special tokens included, as vLLM does)."""
    model = registry.tokenizing_model(body.model)
    tokenizer = model.engine.tokenizer
    check_vocabulary(body.tokens, len(tokenizer), model.id, param="tokens")
    return DetokenizeResponse(prompt=await asyncio.to_thread(tokenizer.decode, body.tokens))
